//! `mailsync db verify`: the live database against the schema contract
//! (tables, columns, views, `security_invoker`, RLS, policies, triggers,
//! grants, pinned `search_path`, indexed foreign keys). Read-only; the checks
//! themselves are SQL in `sql/db/verify.sql`.

use serde::Serialize;

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
    let (client, target) = connect(&config.db_url.value).await?;
    let rows = client
        .query(VERIFY, &[])
        .await
        .map_err(|e| Error::failure(format!("verifying {target}: {}", describe_db_error(&e))))?;
    let mut checks: Vec<Check> = rows
        .iter()
        .map(|row| Check {
            name: row.get("name"),
            ok: row.get("ok"),
            detail: row.get("detail"),
        })
        .collect();
    // The counters behind the views: recounted, when they exist at all.
    let present: bool = client
        .query_one(
            "select to_regclass('public.campaign_email_counts') is not null
                and to_regclass('public.user_daily_sent_counts') is not null",
            &[],
        )
        .await
        .map_err(|e| Error::failure(format!("verifying {target}: {}", describe_db_error(&e))))?
        .get(0);
    if present {
        let rows = client.query(VERIFY_COUNTERS, &[]).await.map_err(|e| {
            Error::failure(format!("verifying {target}: {}", describe_db_error(&e)))
        })?;
        checks.extend(rows.iter().map(|row| Check {
            name: row.get("name"),
            ok: row.get("ok"),
            detail: row.get("detail"),
        }));
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
