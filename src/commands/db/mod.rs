//! `mailsync db reset | apply | verify | migration`: the direct-SQL commands
//! (`migration` only writes a file), the only ones that use `SUPABASE_DB_URL` (through [`crate::postgres`]); everything
//! a user does to their data goes through the REST API instead. The SQL they
//! run lives in `sql/` and is embedded here. What `reset` and `apply` share
//! (running scripts in one transaction, the report) is in this file.

pub mod apply;
pub mod migration;
pub mod reset;
pub mod verify;

use std::time::Instant;

use serde::Serialize;
use tokio_postgres::GenericClient;

use crate::error::{Error, Result};
use crate::output::Output;
use crate::postgres::{connect, describe_db_error, Target};
use crate::settings::Config;
use crate::t;

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
    pub target: Target,
    pub tables: i64,
    pub views: i64,
    pub policies: i64,
    pub triggers: i64,
    pub elapsed_ms: u64,
}

/// What `--dry-run` prints with `--json`: the scripts it would run.
#[derive(Debug, Serialize)]
struct DryRun<'a> {
    target: &'a Target,
    dry_run: bool,
    scripts: &'a [Script],
}

/// `--dry-run`: the SQL, as text or as one JSON document; nothing connects.
pub fn print_dry_run(out: &Output, target: &Target, scripts: &[Script]) -> Result<()> {
    if out.json {
        return out.json(&DryRun {
            target,
            dry_run: true,
            scripts,
        });
    }
    for script in scripts {
        out.print(format!("-- ===== {} =====\n{}", script.file, script.sql));
    }
    Ok(())
}

/// The SQLSTATE the scripts raise when a name they use holds an object that
/// is not mailsync's (they check before changing anything).
const NOT_OURS: &str = "MSOWN";

/// What the scripts create, replace or drop: `(kind, name)`, from the list
/// at the top of `MASTER-DATABASE.sql` (functions with their argument types).
pub fn mailsync_objects() -> Vec<(&'static str, &'static str)> {
    let Some(list) = MASTER_DATABASE
        .split("-- mailsync objects: begin")
        .nth(1)
        .and_then(|rest| rest.split("-- mailsync objects: end").next())
    else {
        return Vec::new();
    };
    list.lines()
        .filter_map(|line| {
            let inner = line.trim().trim_end_matches(',');
            let inner = inner.strip_prefix("('")?.strip_suffix("')")?;
            inner.split_once("', '")
        })
        .collect()
}

/// `--adopt NAME`: marks the existing object(s) of that name as mailsync's,
/// inside the transaction, so the scripts then treat it as their own.
async fn adopt(tx: &tokio_postgres::Transaction<'_>, out: &Output, name: &str) -> Result<()> {
    let objects = mailsync_objects();
    let wanted: Vec<&(&str, &str)> = objects
        .iter()
        .filter(|(kind, n)| *kind != "index" && n.split('(').next() == Some(name))
        .collect();
    if wanted.is_empty() {
        let names: Vec<&str> = objects
            .iter()
            .filter(|(kind, _)| *kind != "index")
            .map(|(_, n)| n.split('(').next().unwrap_or(n))
            .collect();
        return Err(Error::usage(t!(
            "adopt-error-unknown",
            name = name,
            names = names.join(", ")
        )));
    }
    let failed = |e: tokio_postgres::Error| {
        Error::refused(t!(
            "adopt-error-failed",
            name = name,
            reason = describe_db_error(&e)
        ))
    };
    let mark = "Managed by mailsync (adopted with --adopt): mailsync db reset drops it; keep this comment.";
    let mut found = false;
    for (kind, entry) in wanted {
        let statement = if *kind == "function" {
            let row = tx
                .query_one(
                    "select to_regprocedure('public.' || $1)::text",
                    &[&entry.to_string()],
                )
                .await
                .map_err(failed)?;
            row.get::<_, Option<String>>(0)
                .map(|_| format!("comment on function public.{entry} is '{mark}'"))
        } else {
            let row = tx
                .query_opt(
                    "select c.relkind::text from pg_catalog.pg_class c
                      where c.oid = to_regclass('public.' || quote_ident($1))",
                    &[&entry.to_string()],
                )
                .await
                .map_err(failed)?;
            match row.map(|r| r.get::<_, String>(0)) {
                None => None,
                Some(relkind) => {
                    let what = match (relkind.as_str(), *kind) {
                        ("r" | "p", "table") => "table",
                        ("v", "view") => "view",
                        _ => {
                            return Err(Error::check_failed(t!(
                                "adopt-error-wrong-kind",
                                name = name,
                                kind = *kind
                            ))
                            .with_hint(t!("adopt-hint-rename", name = name)))
                        }
                    };
                    Some(format!("comment on {what} public.\"{entry}\" is '{mark}'"))
                }
            }
        };
        if let Some(statement) = statement {
            tx.batch_execute(&statement).await.map_err(failed)?;
            out.note(t!("adopt-done", kind = *kind, entry = *entry));
            found = true;
        }
    }
    if !found {
        return Err(Error::usage(t!("adopt-error-missing", name = name)));
    }
    Ok(())
}

/// Runs `scripts` in one transaction, all or nothing, and reports what the
/// schema then holds. `adopt` names objects to take over first. `verb`
/// (`reset` or `apply`) selects the wording of messages.
pub async fn run_in_transaction(
    config: &Config,
    out: &Output,
    adopt_names: &[String],
    scripts: &[Script],
    verb: &'static str,
) -> Result<SchemaReport> {
    let started = Instant::now();
    let (mut client, target) = connect(config.db_url()?, out).await?;
    let failed = |e: tokio_postgres::Error| {
        if let Some(db) = e.as_db_error().filter(|db| db.code().code() == NOT_OURS) {
            return Error::check_failed(t!(
                "db-error-not-ours",
                verb = verb,
                target = target.to_string(),
                reason = db.message()
            ))
            .with_hint(t!("db-hint-not-ours"));
        }
        Error::refused(t!(
            "db-error-rolled-back",
            verb = verb,
            target = target.to_string(),
            reason = describe_db_error(&e)
        ))
    };
    let tx = client.transaction().await.map_err(failed)?;
    tx.batch_execute(LOCK_TIMEOUT).await.map_err(failed)?;
    tx.batch_execute(STATEMENT_TIMEOUT).await.map_err(failed)?;
    for name in adopt_names {
        adopt(&tx, out, name).await?;
    }
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
        target: target.clone(),
        tables: count("tables"),
        views: count("views"),
        policies: count("policies"),
        triggers: count("triggers"),
        elapsed_ms: started.elapsed().as_millis() as u64,
    })
}

/// The report of `reset` / `apply` (`verb`): one JSON document, or one line.
pub fn print_report(out: &Output, verb: &'static str, report: &SchemaReport) -> Result<()> {
    if out.json {
        return out.json(report);
    }
    out.print(t!(
        "db-report",
        verb = verb,
        target = report.target.to_string(),
        tables = report.tables,
        views = report.views,
        policies = report.policies,
        triggers = report.triggers,
        ms = report.elapsed_ms.to_string()
    ));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list_in(sql: &str) -> Vec<String> {
        let list = sql
            .split("-- mailsync objects: begin")
            .nth(1)
            .and_then(|rest| rest.split("-- mailsync objects: end").next())
            .expect("the object list");
        list.lines()
            .map(|l| l.trim().trim_end_matches(',').to_string())
            .filter(|l| !l.is_empty())
            .collect()
    }

    /// The names after `prefix` in `sql` (up to a space or parenthesis).
    fn created(sql: &str, prefix: &str) -> Vec<String> {
        sql.match_indices(prefix)
            .map(|(at, _)| {
                sql[at + prefix.len()..]
                    .split(|c: char| c == '(' || c.is_whitespace())
                    .next()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn the_three_object_lists_agree() {
        let verify = include_str!("../../../sql/db/verify.sql");
        assert_eq!(list_in(MASTER_DATABASE), list_in(MASTER_CLEAN));
        assert_eq!(list_in(MASTER_DATABASE), list_in(verify));
    }

    #[test]
    fn every_object_the_schema_creates_is_listed_as_mailsyncs() {
        let objects = mailsync_objects();
        let listed = |kind: &str, name: &str| {
            objects
                .iter()
                .any(|(k, n)| *k == kind && n.split('(').next() == Some(name))
        };
        for (prefix, kind) in [
            ("create table if not exists public.", "table"),
            ("create view public.", "view"),
            ("create or replace view public.", "view"),
            ("create or replace function public.", "function"),
            ("create index if not exists ", "index"),
            ("create unique index if not exists ", "index"),
        ] {
            for name in created(MASTER_DATABASE, prefix) {
                assert!(
                    listed(kind, &name),
                    "{kind} {name} is created by MASTER-DATABASE.sql but missing from its object list"
                );
            }
        }
        assert!(objects.len() >= 20, "{objects:?}");
    }

    #[test]
    fn trigger_functions_carry_the_mailsync_prefix() {
        // Names a project may well have (update_updated_at_column) are never
        // created or replaced: every trigger function is mailsync_*.
        assert!(!MASTER_DATABASE.contains("public.update_updated_at_column"));
        for (kind, name) in mailsync_objects() {
            if kind == "function" && name.ends_with("()") {
                assert!(name.starts_with("mailsync_"), "{name}");
            }
        }
    }
}
