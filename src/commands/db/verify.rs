//! `mailsync db verify`: the live database against the schema contract
//! (tables, columns, views, `security_invoker`, RLS, policies, triggers,
//! grants, pinned `search_path`, indexed foreign keys, the counters behind
//! the views). Read-only; exit 4 on drift.
//! Server side: the checks are SQL in `sql/db/verify.sql` and
//! `sql/db/verify-counters.sql`. Tests: `tests/db.rs`.

use serde::Serialize;
use tokio_postgres::Row;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::postgres::{connect, describe_db_error};

const VERIFY: &str = include_str!("../../../sql/db/verify.sql");
const VERIFY_COUNTERS: &str = include_str!("../../../sql/db/verify-counters.sql");

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

impl Check {
    fn of(row: &Row) -> Self {
        Check {
            name: row.get("name"),
            ok: row.get("ok"),
            detail: row.get("detail"),
        }
    }
}

/// `{"ok": bool, "checks": [...]}`.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checks: Vec<Check>,
}

impl VerifyReport {
    pub fn failures(&self) -> impl Iterator<Item = &Check> {
        self.checks.iter().filter(|c| !c.ok)
    }
}

pub async fn run(config: &Config, out: &Output) -> Result<()> {
    let report = verify(config, out).await?;
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
            "the database does not match the schema: {} check(s) failed",
            report.failures().count()
        ))
        .with_hint("run `mailsync db apply` to repair"));
    }
    Ok(())
}

pub async fn verify(config: &Config, out: &Output) -> Result<VerifyReport> {
    let (client, target) = connect(&config.db_url.value, out).await?;
    let failed = |e: tokio_postgres::Error| {
        Error::refused(format!("verifying {target}: {}", describe_db_error(&e)))
    };
    let rows = client.query(VERIFY, &[]).await.map_err(failed)?;
    let mut checks: Vec<Check> = rows.iter().map(Check::of).collect();
    // The counters behind the views: recounted, when they exist at all.
    let present: bool = client
        .query_one(
            "select to_regclass('public.campaign_email_counts') is not null
                and to_regclass('public.user_daily_sent_counts') is not null",
            &[],
        )
        .await
        .map_err(failed)?
        .get(0);
    if present {
        let rows = client.query(VERIFY_COUNTERS, &[]).await.map_err(failed)?;
        checks.extend(rows.iter().map(Check::of));
    } else {
        checks.push(Check {
            name: "counter tables exist".into(),
            ok: false,
            detail:
                "campaign_email_counts or user_daily_sent_counts is missing: run mailsync db apply"
                    .into(),
        });
    }
    Ok(VerifyReport {
        ok: checks.iter().all(|c| c.ok),
        checks,
    })
}
