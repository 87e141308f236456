//! `mailsync completions SHELL`: the shell completion script. `cli.rs`
//! generates it (only it knows the command line); this prints it.
//! Server side: none. Tests: `tests/account.rs`
//! (`completions_and_every_help_have_what_they_promise`).

use crate::error::Result;
use crate::output::Output;

#[derive(Debug, Clone)]
pub struct Options {
    /// The script, as generated for the asked shell.
    pub script: String,
}

pub fn run(options: &Options, out: &Output) -> Result<()> {
    out.raw(&options.script)
}
