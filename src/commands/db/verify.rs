//! `mailsync db verify`: the live database against the schema contract
//! (tables, columns, views, `security_invoker`, RLS, policies, triggers,
//! grants, pinned `search_path`, indexed foreign keys, the counters behind
//! the views). Read-only; exit 4 on drift. Only mailsync's objects (marked
//! "Managed by mailsync", or holding one of its names) are judged: what the
//! same checks find on the project's own objects is a note, never a failure.
//! By default it prints the failures and the count; `-v` every check.
//! Server side: the checks are SQL in `sql/db/verify.sql` and
//! `sql/db/verify-counters.sql`. Tests: `tests/it/db.rs`.

use serde::Serialize;
use tokio_postgres::SimpleQueryMessage;

use crate::error::{Error, Result};
use crate::output::Output;
use crate::postgres::{connect, describe_db_error};
use crate::settings::Config;
use crate::t;

const VERIFY: &str = include_str!("../../../sql/db/verify.sql");
const VERIFY_COUNTERS: &str = include_str!("../../../sql/db/verify-counters.sql");

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
}

/// What a check found on an object that is not mailsync's: said, not judged.
#[derive(Debug, Clone, Serialize)]
pub struct Note {
    pub name: String,
    pub detail: String,
}

impl Check {
    /// The (name, ok, detail[, note]) rows of a check query, read as text:
    /// the checks, and the notes (rows whose `note` is true).
    fn all_of(messages: &[SimpleQueryMessage]) -> (Vec<Self>, Vec<Note>) {
        let mut checks = Vec::new();
        let mut notes = Vec::new();
        for message in messages {
            let SimpleQueryMessage::Row(row) = message else {
                continue;
            };
            let name = row.get("name").unwrap_or_default().to_string();
            let detail = row.get("detail").unwrap_or_default().to_string();
            if row.try_get("note").ok().flatten() == Some("t") {
                notes.push(Note { name, detail });
            } else {
                checks.push(Check {
                    name,
                    ok: row.get("ok") == Some("t"),
                    detail,
                });
            }
        }
        (checks, notes)
    }
}

/// `{"ok": bool, "checks": [...], "notes": [...]}`.
#[derive(Debug, Serialize)]
pub struct VerifyReport {
    pub ok: bool,
    pub checks: Vec<Check>,
    /// The project's own objects, as the same checks see them.
    pub notes: Vec<Note>,
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
        // Every check with -v; otherwise only what failed.
        for check in &report.checks {
            if check.ok && out.verbose == 0 {
                continue;
            }
            let mark = if check.ok { "ok  " } else { "FAIL" };
            out.print(format!("{mark} {} — {}", check.name, check.detail));
        }
        if out.verbose > 0 {
            for note in &report.notes {
                out.print(format!("note {} — {}", note.name, note.detail));
            }
        }
        let failed = report.failures().count();
        out.print(t!(
            "verify-summary",
            checks = report.checks.len(),
            passed = report.checks.len() - failed,
            failed = failed
        ));
        if !report.notes.is_empty() {
            out.print(t!("verify-notes", count = report.notes.len()));
        }
    }
    if !report.ok {
        return Err(Error::check_failed(t!(
            "verify-error-drift",
            count = report.failures().count()
        ))
        .with_hint(t!("verify-hint-apply")));
    }
    Ok(())
}

pub async fn verify(config: &Config, out: &Output) -> Result<VerifyReport> {
    let (mut client, target) = connect(config.db_url()?, out).await?;
    let failed = |e: tokio_postgres::Error| {
        Error::refused(t!(
            "verify-error",
            target = target.to_string(),
            reason = describe_db_error(&e)
        ))
    };
    // One read-only transaction with its own statement timeout (the recount
    // may outlast hosted Supabase's 2-minute limit), through the simple query
    // protocol only: no named prepared statement, so a transaction-mode
    // pooler works as well as a direct connection.
    let tx = client.transaction().await.map_err(failed)?;
    tx.batch_execute(&format!(
        "set transaction read only; {}",
        super::STATEMENT_TIMEOUT
    ))
    .await
    .map_err(failed)?;
    let (mut checks, notes) = Check::all_of(
        &tx.simple_query(&super::with_object_list(VERIFY))
            .await
            .map_err(failed)?,
    );
    // The counters behind the views: recounted, when they exist at all.
    let present = tx
        .simple_query(
            "select to_regclass('public.campaign_email_counts') is not null
                and to_regclass('public.user_daily_sent_counts') is not null as present",
        )
        .await
        .map_err(failed)?
        .iter()
        .any(|m| matches!(m, SimpleQueryMessage::Row(r) if r.get("present") == Some("t")));
    if present {
        checks.extend(Check::all_of(&tx.simple_query(VERIFY_COUNTERS).await.map_err(failed)?).0);
    } else {
        checks.push(Check {
            name: "counter tables exist".into(),
            ok: false,
            detail:
                "campaign_email_counts or user_daily_sent_counts is missing: run mailsync db apply"
                    .into(),
        });
    }
    tx.commit().await.map_err(failed)?;
    Ok(VerifyReport {
        ok: checks.iter().all(|c| c.ok),
        checks,
        notes,
    })
}
