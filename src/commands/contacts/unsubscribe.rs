//! `mailsync contacts unsubscribe EMAIL…`: adds addresses to the user's
//! suppression list, through the REST API as the signed-in user. A
//! suppressed address is left out by later `campaigns send` and skipped by
//! `campaigns deliver`. `--undo` takes addresses off the list again.
//! Server side: table `suppressions` in `sql/MASTER-DATABASE.sql`.
//! Tests: `tests/it/campaigns_deliver.rs`.

use serde::Serialize;
use serde_json::{json, Value};

use crate::error::{Error, Result};
use crate::output::Output;
use crate::settings::Config;
use crate::t;

#[derive(Debug, Clone)]
pub struct Options {
    /// The addresses, as typed.
    pub emails: Vec<String>,
    /// Take them off the list instead.
    pub undo: bool,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct UnsubscribeReport {
    pub suppressed: Vec<String>,
    pub removed: Vec<String>,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let undo = options.undo;
    let mut addresses: Vec<String> = Vec::new();
    for raw in &options.emails {
        let email = raw.trim().to_lowercase();
        if !email_address::EmailAddress::is_valid(&email) {
            return Err(Error::usage(t!(
                "unsubscribe-error-not-email",
                email = format!("{raw:?}")
            )));
        }
        if !addresses.contains(&email) {
            addresses.push(email);
        }
    }
    if addresses.is_empty() {
        return Err(Error::usage(t!("unsubscribe-error-none")));
    }
    let client = crate::supabase::user::user_client(config, out).await?;
    let report = if undo {
        let removed: Vec<Value> = client
            .execute(
                client
                    .from("suppressions")
                    .in_("email", addresses.clone())
                    .delete(),
                Some("return=representation"),
                &t!("doing-unsuppressing"),
            )
            .await?
            .json(&t!("doing-unsuppressing"))?;
        UnsubscribeReport {
            suppressed: Vec::new(),
            removed: removed
                .iter()
                .filter_map(|r| r["email"].as_str().map(str::to_string))
                .collect(),
        }
    } else {
        let rows: Vec<Value> = addresses
            .iter()
            .map(|e| json!({"email": e, "reason": "unsubscribed", "detail": "mailsync contacts unsubscribe"}))
            .collect();
        client
            .execute(
                client
                    .from("suppressions")
                    .upsert(Value::Array(rows).to_string())
                    .on_conflict("user_id,email"),
                Some("resolution=merge-duplicates,return=minimal"),
                &t!("doing-suppressing"),
            )
            .await?;
        UnsubscribeReport {
            suppressed: addresses,
            removed: Vec::new(),
        }
    };
    if out.json {
        return out.json(&report);
    }
    if undo {
        out.print(crate::t!(
            "unsubscribe-undone",
            count = report.removed.len()
        ));
    } else {
        out.print(crate::t!(
            "unsubscribe-done",
            count = report.suppressed.len()
        ));
    }
    Ok(())
}
