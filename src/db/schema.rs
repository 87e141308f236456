//! `mailsync db reset` and `mailsync db apply`: run MASTER-CLEAN.sql and/or
//! MASTER-DATABASE.sql in one transaction, all or nothing, then report what
//! the schema holds.

use std::io::{BufRead, IsTerminal, Write};
use std::time::Instant;

use serde::Serialize;
use tokio_postgres::GenericClient;

use super::connect::{connect, describe_db_error, Target};
use super::{MASTER_CLEAN, MASTER_DATABASE};
use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Output;

const INVENTORY: &str = include_str!("../../sql/db/inventory.sql");

/// Waiting longer than this for a lock means another session holds the
/// tables (a watcher, an import): better to stop and say so than to hang.
const LOCK_TIMEOUT: &str = "set local lock_timeout = '30s'";

/// Hosted projects stop any statement after 2 minutes; a backfill over
/// millions of emails may need more. `set local` lasts for this transaction
/// only, so it is also right through a transaction-mode pooler.
pub(crate) const STATEMENT_TIMEOUT: &str = "set local statement_timeout = '30min'";

#[derive(Debug, Clone, Default)]
pub struct ResetArgs {
    pub yes: bool,
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default)]
pub struct ApplyArgs {
    pub dry_run: bool,
}

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

/// Drops and recreates the schema: every mailsync row is deleted.
pub async fn reset(config: &Config, args: &ResetArgs, out: &Output) -> Result<SchemaReport> {
    let target = Target::of(&config.db_url.value)?;
    if args.dry_run {
        print_sql(
            out,
            &[
                ("MASTER-CLEAN.sql", MASTER_CLEAN),
                ("MASTER-DATABASE.sql", MASTER_DATABASE),
            ],
        );
        return Ok(empty_report(&target));
    }
    out.note(format!("Target: {target}"));
    confirm_reset(&target, args.yes)?;
    run_in_transaction(config, out, &[MASTER_CLEAN, MASTER_DATABASE], "reset").await
}

/// Applies MASTER-DATABASE.sql alone; idempotent, keeps every row.
pub async fn apply(config: &Config, args: &ApplyArgs, out: &Output) -> Result<SchemaReport> {
    let target = Target::of(&config.db_url.value)?;
    if args.dry_run {
        print_sql(out, &[("MASTER-DATABASE.sql", MASTER_DATABASE)]);
        return Ok(empty_report(&target));
    }
    out.note(format!("Target: {target}"));
    run_in_transaction(config, out, &[MASTER_DATABASE], "apply").await
}

fn empty_report(target: &Target) -> SchemaReport {
    SchemaReport {
        target: target.to_string(),
        tables: 0,
        views: 0,
        policies: 0,
        triggers: 0,
        elapsed_ms: 0,
    }
}

fn print_sql(out: &Output, files: &[(&str, &str)]) {
    for (name, sql) in files {
        out.print(format!("-- ===== sql/{name} =====\n{sql}"));
    }
}

/// A destructive reset needs a yes: `--yes`, or an answer on a terminal
/// (default no). Without a terminal and without `--yes` it is a usage error.
fn confirm_reset(target: &Target, yes: bool) -> Result<()> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
        return Err(Error::usage(format!(
            "refusing to reset {target} without confirmation: no terminal to ask on; pass --yes to reset unattended (nothing was changed)"
        )));
    }
    eprint!("This drops every mailsync table and all its rows in {target}, then recreates the schema. Continue? [y/N] ");
    let _ = std::io::stderr().flush();
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    if matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
        Ok(())
    } else {
        Err(Error::failure("reset cancelled; nothing was changed"))
    }
}

async fn run_in_transaction(
    config: &Config,
    out: &Output,
    scripts: &[&str],
    verb: &str,
) -> Result<SchemaReport> {
    let started = Instant::now();
    let (mut client, target) = connect(&config.db_url.value).await?;
    let failed = |e: tokio_postgres::Error| {
        Error::failure(format!(
            "{verb} of {target} failed and was rolled back, nothing changed: {}",
            describe_db_error(&e)
        ))
    };
    let tx = client.transaction().await.map_err(failed)?;
    tx.batch_execute(LOCK_TIMEOUT).await.map_err(failed)?;
    tx.batch_execute(STATEMENT_TIMEOUT).await.map_err(failed)?;
    for sql in scripts {
        tx.batch_execute(sql).await.map_err(failed)?;
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
    let get = |name: &str| -> i64 {
        row.and_then(|r| r.get(name))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    Ok(SchemaReport {
        target: target.to_string(),
        tables: get("tables"),
        views: get("views"),
        policies: get("policies"),
        triggers: get("triggers"),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}
