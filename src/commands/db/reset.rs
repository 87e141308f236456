//! `mailsync db reset`: drop the mailsync schema and create it again, in one
//! transaction, after a confirmation. Every mailsync row is deleted.
//! Server side: `sql/MASTER-CLEAN.sql` then `sql/MASTER-DATABASE.sql`,
//! counted by `sql/db/inventory.sql`. Tests: `tests/db.rs`.

use super::{print_dry_run, print_report, run_in_transaction, CLEAN, SCHEMA};
use crate::config::Config;
use crate::error::Result;
use crate::output::Output;
use crate::postgres::Target;

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
    let target = Target::of(&config.db_url.value)?;
    if options.dry_run {
        return print_dry_run(out, &target, &[CLEAN, SCHEMA]);
    }
    out.note(format!("Target: {target}"));
    if !options.yes {
        let asked = out.confirm(
            &format!("This drops every mailsync table and all its rows in {target}, then recreates the schema. Continue?"),
            &format!("refusing to reset {target} without confirmation: no terminal to ask on; pass --yes to reset unattended (nothing was changed)"),
        )?;
        if !asked {
            out.note("Reset cancelled: nothing changed.");
            return Ok(());
        }
    }
    let report = run_in_transaction(config, out, &options.adopt, &[CLEAN, SCHEMA], "reset").await?;
    print_report(out, "Reset", &report)
}
