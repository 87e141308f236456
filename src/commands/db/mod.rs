//! `mailsync db reset | apply | verify`: the direct-SQL commands, the only
//! ones that use `SUPABASE_DB_URL` (through [`crate::postgres`]); everything
//! a user does to their data goes through the REST API instead. The SQL they
//! run lives in `sql/` and is embedded here. What `reset` and `apply` share
//! (running scripts in one transaction, the report) is in this file.

pub mod apply;
pub mod reset;
pub mod verify;

use std::time::Instant;

use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::postgres::{connect, describe_db_error, Target};

/// `sql/MASTER-CLEAN.sql`: drops what MASTER-DATABASE.sql creates.
pub const MASTER_CLEAN: &str = include_str!("../../../sql/MASTER-CLEAN.sql");
/// `sql/MASTER-DATABASE.sql`: the schema, idempotent.
pub const MASTER_DATABASE: &str = include_str!("../../../sql/MASTER-DATABASE.sql");

const INVENTORY: &str = include_str!("../../../sql/db/inventory.sql");

/// Waiting longer than this for a lock means another session holds the
/// tables (a watcher, an import): better to stop and say so than to hang.
const LOCK_TIMEOUT: &str = "set local lock_timeout = '30s'";

/// Hosted projects stop any statement after 2 minutes; a backfill or a
/// recount over millions of emails may need more. `set local` lasts for the
/// transaction only, so it is also right through a transaction-mode pooler
/// (a session `SET` would stay on the pooled connection for other clients).
pub const STATEMENT_TIMEOUT: &str = "set local statement_timeout = '30min'";

/// One SQL file a command runs.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Script {
    pub file: &'static str,
    pub sql: &'static str,
}

pub const CLEAN: Script = Script {
    file: "sql/MASTER-CLEAN.sql",
    sql: MASTER_CLEAN,
};
pub const SCHEMA: Script = Script {
    file: "sql/MASTER-DATABASE.sql",
    sql: MASTER_DATABASE,
};

/// What `db reset` / `db apply` report (`--json`).
#[derive(Debug, Serialize)]
pub struct SchemaReport {
    pub target: String,
    pub tables: i64,
    pub views: i64,
    pub policies: i64,
    pub triggers: i64,
    pub elapsed_ms: u64,
}

/// What `--dry-run` prints with `--json`: the scripts it would run.
#[derive(Debug, Serialize)]
struct DryRun<'a> {
    target: String,
    dry_run: bool,
    scripts: &'a [Script],
}

/// `--dry-run`: the SQL, as text or as one JSON document; nothing connects.
pub fn print_dry_run(out: &Output, target: &Target, scripts: &[Script]) -> Result<()> {
    if out.json {
        return out.json(&DryRun {
            target: target.to_string(),
            dry_run: true,
            scripts,
        });
    }
    for script in scripts {
        out.print(format!("-- ===== {} =====\n{}", script.file, script.sql));
    }
    Ok(())
}

/// Runs `scripts` in one transaction, all or nothing, and reports what the
/// schema then holds.
pub async fn run_in_transaction(
    config: &Config,
    out: &Output,
    scripts: &[Script],
    verb: &str,
) -> Result<SchemaReport> {
    let started = Instant::now();
    let (mut client, target) = connect(&config.db_url.value, out).await?;
    let failed = |e: tokio_postgres::Error| {
        Error::refused(format!(
            "{verb} of {target} failed and was rolled back, nothing changed: {}",
            describe_db_error(&e)
        ))
    };
    let tx = client.transaction().await.map_err(failed)?;
    tx.batch_execute(LOCK_TIMEOUT).await.map_err(failed)?;
    tx.batch_execute(STATEMENT_TIMEOUT).await.map_err(failed)?;
    for script in scripts {
        tx.batch_execute(script.sql).await.map_err(failed)?;
    }
    let report = inventory(&tx, &target, started).await.map_err(failed)?;
    tx.commit().await.map_err(failed)?;
    let report = SchemaReport {
        elapsed_ms: started.elapsed().as_millis() as u64,
        ..report
    };
    out.debug(format!("{verb} committed in {} ms", report.elapsed_ms));
    Ok(report)
}

async fn inventory(
    client: &impl GenericClient,
    target: &Target,
    started: Instant,
) -> std::result::Result<SchemaReport, tokio_postgres::Error> {
    // The simple query protocol: no named prepared statement, which a
    // transaction-mode pooler (Supavisor 6543, PgBouncer) does not keep.
    let messages = client.simple_query(INVENTORY).await?;
    let row = messages.iter().find_map(|m| match m {
        tokio_postgres::SimpleQueryMessage::Row(row) => Some(row),
        _ => None,
    });
    let count = |name: &str| -> i64 {
        row.and_then(|r| r.get(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(SchemaReport {
        target: target.to_string(),
        tables: count("tables"),
        views: count("views"),
        policies: count("policies"),
        triggers: count("triggers"),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The report of `reset` / `apply`: one JSON document, or one line.
pub fn print_report(out: &Output, verb: &str, report: &SchemaReport) -> Result<()> {
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
