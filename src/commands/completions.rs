//! `mailsync completions SHELL`: the shell completion script. `cli.rs`
//! generates it (only it knows the command line); this prints it, or with
//! `--json` one document `{"shell", "script"}`.
//! Server side: none. Tests: `tests/it/account.rs`
//! (`completions_and_every_help_have_what_they_promise`,
//! `completions_json_is_one_document_with_the_script`).

use serde::Serialize;

use crate::error::Result;
use crate::output::Output;

#[derive(Debug, Clone, Serialize)]
pub struct Options {
    /// The shell, as named on the command line (`bash`, `zsh`, ...).
    pub shell: String,
    /// The script, as generated for that shell.
    pub script: String,
}

pub fn run(options: &Options, out: &Output) -> Result<()> {
    if out.json {
        return out.json(options);
    }
    out.raw(&options.script)
}
