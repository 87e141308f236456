//! `mailsync campaigns send`: queue a campaign, one pending email per
//! contact (optionally of one organisation), in one server-side call, after
//! a confirmation that shows how many recipients.
//! Server side: `send_campaign(campaign, organization)` and
//! `organizations.name_key` in `sql/MASTER-DATABASE.sql`.
//! Tests: `tests/campaigns.rs`.

use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::config::Config;
use crate::domain::CampaignStatus;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::supabase::rest::RestClient;

#[derive(Debug, Clone)]
pub struct Options {
    /// The campaign: its id, a unique id prefix, or its unique name.
    pub campaign: String,
    /// Only the contacts of this organisation.
    pub organization: Option<String>,
    /// Do not ask for confirmation.
    pub yes: bool,
}

/// What `send_campaign` answers, and `--json` prints.
#[derive(Debug, Serialize, Deserialize)]
pub struct Queued {
    pub campaign_id: String,
    pub name: String,
    pub status: CampaignStatus,
    pub queued: i64,
    pub organization: Option<String>,
    /// Contacts left out because their address is suppressed (unsubscribed
    /// or bounced; see `suppressions`).
    #[serde(default)]
    pub suppressed: i64,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let client = crate::supabase::user::user_client(config, out).await?;
    let target = crate::supabase::lookup::campaign(&client, &options.campaign).await?;
    let name = &target.name;
    if !target.status.can_send() {
        return Err(Error::refused(format!(
            "campaign {name:?} is already {}: nothing was queued",
            target.status
        ))
        .with_hint("create a new campaign to send again"));
    }
    if !options.yes {
        let no_terminal = format!(
            "refusing to send {name:?} without confirmation: no terminal to ask on; pass --yes (nothing was queued)"
        );
        if !crate::output::can_ask() {
            return Err(Error::usage(no_terminal));
        }
        let (recipients, organization) =
            count_recipients(&client, options.organization.as_deref()).await?;
        let question = format!(
            "Queue campaign {name:?} to {recipients} recipient(s){}?",
            organization
                .map(|o| format!(" of {o:?}"))
                .unwrap_or_default()
        );
        if !out.confirm(&question, &no_terminal)? {
            out.note("Not sent: nothing changed.");
            return Ok(());
        }
    }
    let mut args = json!({ "campaign": target.id });
    if let Some(org) = &options.organization {
        args["organization"] = json!(org);
    }
    let result: Queued = client
        .fetch(
            client.rpc("send_campaign", &args),
            &format!("sending campaign {name:?}"),
        )
        .await?;
    if out.json {
        return out.json(&result);
    }
    out.print(format!(
        "Campaign {name:?} is sending: {} email(s) queued{}",
        result.queued,
        result
            .organization
            .as_deref()
            .map(|o| format!(" for {o:?}"))
            .unwrap_or_default()
    ));
    if result.suppressed > 0 {
        out.print(format!(
            "{} contact(s) left out: unsubscribed or bounced (mailsync contacts unsubscribe --undo EMAIL takes one back)",
            result.suppressed
        ));
    }
    out.print("Deliver it with: mailsync campaigns deliver; follow it with: mailsync campaigns watch --until-done");
    Ok(())
}

/// The recipients `send_campaign` would queue: the user's contacts, of the
/// organisation the same rule finds. Also returns that organisation's name.
async fn count_recipients(
    client: &RestClient,
    organization: Option<&str>,
) -> Result<(u64, Option<String>)> {
    let mut query = client.from("contacts").select("id").limit(1);
    let mut found = None;
    if let Some(name) = organization {
        let Some(stored) = crate::supabase::lookup::organization(client, name).await? else {
            return Err(Error::refused(format!(
                "no organisation named {name:?}: nothing was queued"
            )));
        };
        query = query.eq("organization_name", &stored);
        found = Some(stored);
    }
    let response = client
        .execute(query, Some("count=exact"), "counting recipients")
        .await?;
    Ok((response.total_count().unwrap_or(0), found))
}
