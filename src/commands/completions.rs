//! `mailsync completions SHELL`: the shell completion script. `cli.rs`
//! generates it (only it knows the command line); this prints it.
//! Server side: none. Tests: `tests/completions.rs`.

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
