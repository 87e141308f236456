//! `mailsync db reset`: drop the mailsync schema and create it again, in one
//! transaction, after a confirmation. Every mailsync row is deleted.
//! Server side: `sql/MASTER-CLEAN.sql` then `sql/MASTER-DATABASE.sql`,
//! counted by `sql/db/inventory.sql`. Tests: `tests/it/db.rs`.

use super::{print_dry_run, print_report, run_in_transaction, CLEAN, SCHEMA};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::postgres::Target;
use crate::settings::Config;
use crate::t;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Do not ask for confirmation.
    pub yes: bool,
    /// Print the SQL instead of running it.
    pub dry_run: bool,
    /// Names of existing objects to take over as mailsync's (`--adopt`).
    pub adopt: Vec<String>,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let target = Target::of(config.db_url()?)?;
    if options.dry_run {
        return print_dry_run(out, &target, &[CLEAN, SCHEMA]);
    }
    out.note(t!("db-target", target = target.to_string()));
    if !options.yes {
        let target_text = target.to_string();
        let no_terminal = t!("reset-no-terminal", target = target_text.as_str());
        if !crate::output::can_ask() {
            return Err(Error::usage(no_terminal).with_hint(t!("reset-no-terminal-hint")));
        }
        let asked = out.confirm(
            &t!("reset-confirm", target = target_text.as_str()),
            &no_terminal,
        )?;
        if !asked {
            out.note(t!("reset-cancelled"));
            return Ok(());
        }
    }
    let report = run_in_transaction(config, out, &options.adopt, &[CLEAN, SCHEMA], "reset").await?;
    print_report(out, "reset", &report)
}
