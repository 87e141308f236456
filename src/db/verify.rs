//! `mailsync db verify`: the live database against the schema contract
//! (tables, columns, views, `security_invoker`, RLS, policies, triggers,
//! grants, pinned `search_path`, indexed foreign keys). Read-only; the checks
//! themselves are SQL in `sql/db/verify.sql`.

use serde::Serialize;
use tokio_postgres::SimpleQueryMessage;

use super::connect::{connect, describe_db_error};
use crate::config::Config;
use crate::error::{Error, Result};

const VERIFY: &str = include_str!("../../sql/db/verify.sql");
const VERIFY_COUNTERS: &str = include_str!("../../sql/db/verify-counters.sql");

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub name: String,
    pub ok: bool,
    pub detail: String,
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

pub async fn verify(config: &Config) -> Result<VerifyReport> {
    let (mut client, target) = connect(&config.db_url.value).await?;
    let failed = |e: tokio_postgres::Error| {
        Error::failure(format!("verifying {target}: {}", describe_db_error(&e)))
    };
    // One read-only transaction with its own statement timeout (the recount
    // may outlast hosted Supabase's 2-minute limit), through the simple query
    // protocol only: no named prepared statement, so a transaction-mode
    // pooler works as well as a direct connection.
    let tx = client.transaction().await.map_err(failed)?;
    tx.batch_execute(&format!(
        "set transaction read only; {}",
        super::schema::STATEMENT_TIMEOUT
    ))
    .await
    .map_err(failed)?;
    let mut checks = checks_of(&tx.simple_query(VERIFY).await.map_err(failed)?);
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
        checks.extend(checks_of(
            &tx.simple_query(VERIFY_COUNTERS).await.map_err(failed)?,
        ));
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
    })
}

/// The (name, ok, detail) rows of a check query, in text form.
fn checks_of(messages: &[SimpleQueryMessage]) -> Vec<Check> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(Check {
                name: row.get("name").unwrap_or_default().to_string(),
                ok: row.get("ok") == Some("t"),
                detail: row.get("detail").unwrap_or_default().to_string(),
            }),
            _ => None,
        })
        .collect()
}
