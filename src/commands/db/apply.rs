//! `mailsync db apply`: apply the schema without dropping anything
//! (idempotent, keeps every row), in one transaction.
//! Server side: `sql/MASTER-DATABASE.sql`, counted by `sql/db/inventory.sql`.
//! Tests: `tests/it/db.rs`.

use super::{print_dry_run, print_report, run_in_transaction, SCHEMA};
use crate::error::Result;
use crate::output::Output;
use crate::postgres::Target;
use crate::settings::Config;
use crate::t;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Print the SQL instead of running it.
    pub dry_run: bool,
    /// Names of existing objects to take over as mailsync's (`--adopt`).
    pub adopt: Vec<String>,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let target = Target::of(config.db_url()?)?;
    if options.dry_run {
        return print_dry_run(out, &target, &[SCHEMA]);
    }
    out.note(t!("db-target", target = target.to_string()));
    let report = run_in_transaction(config, out, &options.adopt, &[SCHEMA], "apply").await?;
    print_report(out, "apply", &report)
}
