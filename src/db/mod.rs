//! The direct-SQL commands (`db reset`, `db apply`, `db verify`) and the one
//! way they connect to Postgres. These are the only commands that use
//! `SUPABASE_DB_URL`; everything a user does to their data goes through the
//! REST API instead. The SQL they run lives in `sql/` and is embedded here.

mod connect;
mod schema;
mod verify;

pub use connect::{connect, Target};
pub use schema::{apply, reset, ApplyArgs, ResetArgs, SchemaReport};
pub use verify::{verify, Check, VerifyReport};

/// `sql/MASTER-CLEAN.sql`: drops what MASTER-DATABASE.sql creates.
pub const MASTER_CLEAN: &str = include_str!("../../sql/MASTER-CLEAN.sql");
/// `sql/MASTER-DATABASE.sql`: the schema, idempotent.
pub const MASTER_DATABASE: &str = include_str!("../../sql/MASTER-DATABASE.sql");

use crate::cli::DbCommand;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Output;

/// Runs one `mailsync db ...` command and prints its report.
pub async fn run(cmd: &DbCommand, config: &Config, out: &Output) -> Result<()> {
    match cmd {
        DbCommand::Reset { yes, dry_run } => {
            let args = ResetArgs {
                yes: *yes,
                dry_run: *dry_run,
            };
            let report = reset(config, &args, out).await?;
            if !dry_run {
                print_schema_report(out, "Reset", &report)?;
            }
        }
        DbCommand::Apply { yes: _, dry_run } => {
            let report = apply(config, &ApplyArgs { dry_run: *dry_run }, out).await?;
            if !dry_run {
                print_schema_report(out, "Applied", &report)?;
            }
        }
        DbCommand::Verify => {
            let report = verify(config).await?;
            if out.json {
                out.json(&report)?;
            } else {
                for check in &report.checks {
                    let mark = if check.ok { "ok  " } else { "FAIL" };
                    out.print(format!("{mark} {} — {}", check.name, check.detail));
                }
                let failed = report.failures().count();
                out.print(format!(
                    "{} checks, {} passed, {} failed",
                    report.checks.len(),
                    report.checks.len() - failed,
                    failed
                ));
            }
            if !report.ok {
                return Err(Error::check_failed(format!(
                    "the database does not match the schema: {} check(s) failed; run `mailsync db apply` to repair",
                    report.failures().count()
                )));
            }
        }
    }
    Ok(())
}

fn print_schema_report(out: &Output, verb: &str, report: &SchemaReport) -> Result<()> {
    if out.json {
        return out.json(report);
    }
    out.print(format!(
        "{verb} {}: {} tables, {} views, {} policies, {} triggers in {} ms",
        report.target,
        report.tables,
        report.views,
        report.policies,
        report.triggers,
        report.elapsed_ms
    ));
    Ok(())
}
