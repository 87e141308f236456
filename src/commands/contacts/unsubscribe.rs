//! `mailsync contacts unsubscribe EMAIL…`: adds addresses to the user's
//! suppression list, through the REST API as the signed-in user. A
//! suppressed address is left out by later `campaigns send` and skipped by
//! `campaigns deliver`. An address already on the list keeps its reason (a
//! hard bounce or a complaint is not turned into an unsubscription).
//! `--undo` takes unsubscribed addresses off the list again; an address
//! suppressed because it bounced or complained stays unless
//! `--include-bounces` / `--include-complaints` says so (a REST filter on
//! `reason`).
//! `--token TOKEN` (for the operator's one-click endpoint) suppresses the
//! address of the email a `{{unsubscribe_token}}` names, once its HMAC
//! checks out with `MAILSYNC_UNSUBSCRIBE_SECRET` for this user, this email
//! (read through REST: another user's email is not found) and its address.
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
    /// Or a `{{unsubscribe_token}}` naming the email whose address to suppress.
    pub token: Option<String>,
    /// Take them off the list instead.
    pub undo: bool,
    /// With `undo`: hard bounces too.
    pub include_bounces: bool,
    /// With `undo`: complaints too.
    pub include_complaints: bool,
}

/// An address `--undo` left on the list, and why it is there.
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct Kept {
    pub email: String,
    pub reason: String,
}

/// What `--json` prints.
#[derive(Debug, Serialize)]
pub struct UnsubscribeReport {
    pub suppressed: Vec<String>,
    pub removed: Vec<String>,
    /// With `--undo`: the addresses kept because they bounced or complained.
    pub kept: Vec<Kept>,
}

#[derive(Debug, serde::Deserialize)]
struct SentTo {
    recipient_email: String,
}

/// The address of the email `token` names, once the token proves it was
/// made with the secret for this user, that email and that address; the
/// same error (exit 1) for every way a token can be wrong.
async fn token_address(
    token: &str,
    access: &crate::settings::Secret,
    config: &Config,
    client: &crate::supabase::rest::RestClient,
) -> Result<String> {
    let secret = config.unsubscribe_secret()?;
    let invalid = || Error::failure(t!("unsubscribe-error-token"));
    let email_id = crate::smtp::unsubscribe_token_email(token).ok_or_else(invalid)?;
    let user_id = crate::supabase::user::subject(access.expose()).ok_or_else(invalid)?;
    let rows: Vec<SentTo> = client
        .fetch(
            client
                .from("emails_sent")
                .select("recipient_email")
                .eq("id", email_id.hyphenated().to_string()),
            &t!("doing-suppressing"),
        )
        .await?;
    let address = rows
        .into_iter()
        .next()
        .map(|r| r.recipient_email)
        .ok_or_else(invalid)?;
    if !crate::smtp::verify_unsubscribe_token(&secret, token, &user_id, &address) {
        return Err(invalid());
    }
    Ok(address.trim().to_lowercase())
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
    let access = crate::supabase::user::access_token(config, out).await?;
    let client = crate::supabase::rest::RestClient::new(config, &access)?;
    if let Some(token) = &options.token {
        addresses.push(token_address(token, &access, config, &client).await?);
    }
    if addresses.is_empty() {
        return Err(Error::usage(t!("unsubscribe-error-none")));
    }
    let report = if undo {
        let mut reasons = vec!["unsubscribed"];
        if options.include_bounces {
            reasons.push("bounced");
        }
        if options.include_complaints {
            reasons.push("complained");
        }
        let removed: Vec<Value> = client
            .execute(
                client
                    .from("suppressions")
                    .in_("email", addresses.clone())
                    .in_("reason", reasons)
                    .delete(),
                Some("return=representation"),
                &t!("doing-unsuppressing"),
            )
            .await?
            .json(&t!("doing-unsuppressing"))?;
        // What is still on the list of these addresses was kept for its reason.
        let kept: Vec<Kept> = client
            .fetch(
                client
                    .from("suppressions")
                    .select("email,reason")
                    .in_("email", addresses.clone())
                    .order("email"),
                &t!("doing-unsuppressing"),
            )
            .await?;
        UnsubscribeReport {
            suppressed: Vec::new(),
            removed: removed
                .iter()
                .filter_map(|r| r["email"].as_str().map(str::to_string))
                .collect(),
            kept,
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
                // An address already suppressed keeps its reason: a hard
                // bounce stays one, and `--undo` keeps it.
                Some("resolution=ignore-duplicates,return=minimal"),
                &t!("doing-suppressing"),
            )
            .await?;
        UnsubscribeReport {
            suppressed: addresses,
            removed: Vec::new(),
            kept: Vec::new(),
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
        for reason in ["bounced", "complained"] {
            let emails: Vec<&str> = report
                .kept
                .iter()
                .filter(|k| k.reason == reason)
                .map(|k| k.email.as_str())
                .collect();
            if !emails.is_empty() {
                out.note(crate::t!(
                    "unsubscribe-kept",
                    reason = reason,
                    count = emails.len(),
                    emails = emails.join(", ")
                ));
            }
        }
    } else {
        out.print(crate::t!(
            "unsubscribe-done",
            count = report.suppressed.len()
        ));
    }
    Ok(())
}
