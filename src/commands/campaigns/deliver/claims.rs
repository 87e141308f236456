//! The database side of a run, all through the user's REST session: the
//! campaign and its queue, the claims (`claim_emails`), the outcomes
//! written as they come (`record_email_outcomes`), the leases kept alive
//! while emails are held (`extend_email_leases`) and the emails an earlier
//! run left without an outcome (`unknown_emails`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::mpsc;
use uuid::Uuid;

use super::stop::Stop;
use super::summary::{Tally, UnknownEmail};
use crate::domain::{CampaignStatus, EmailStatus};
use crate::error::{Error, Result};
use crate::smtp::Template;
use crate::supabase::rest::RestClient;
use crate::t;

/// An email the database handed to this worker.
#[derive(Debug, Clone, Deserialize)]
pub(super) struct Claimed {
    pub id: Uuid,
    pub campaign_id: Uuid,
    pub recipient_email: String,
    pub recipient_organization: Option<String>,
    pub message_id: String,
    /// `sending`, or already settled by the database (a suppressed address).
    pub status: EmailStatus,
}

#[derive(Debug, Deserialize)]
struct CampaignText {
    id: Uuid,
    subject: String,
    content: String,
}

#[derive(Debug, Deserialize)]
pub(super) struct UnknownReport {
    pub count: u64,
    pub emails: Vec<UnknownEmail>,
}

/// An outcome on its way to the database.
pub(super) struct Record {
    pub id: Uuid,
    /// `sent`, `bounced`, `failed`, or `pending` (released untouched).
    pub status: EmailStatus,
    pub response: Option<String>,
}

/// The emails this worker holds, whose leases the heartbeat keeps alive.
pub(super) type Held = Arc<Mutex<HashSet<Uuid>>>;

pub(super) fn hold(held: &Held, id: Uuid) {
    held.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
}

/// The REST calls of a run, timed (the share of time in the database).
#[derive(Clone)]
pub(super) struct Db {
    pub client: RestClient,
    pub worker: String,
    pub tally: Arc<Tally>,
}

impl Db {
    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        function: &str,
        args: &Value,
        what: &str,
    ) -> Result<T> {
        self.tally.db_enter();
        let result = self
            .client
            .fetch(self.client.rpc(function, args), what)
            .await;
        self.tally.db_leave();
        result
    }

    /// The emails an earlier run left without an outcome (the first 20).
    pub(super) async fn unknown(&self, campaign: Option<Uuid>) -> Result<UnknownReport> {
        self.call(
            "unknown_emails",
            &with_campaign(json!({"max_rows": 20}), campaign),
            &t!("doing-unknown-outcomes"),
        )
        .await
    }

    /// Claims up to `max` emails for `lease_secs` seconds.
    pub(super) async fn claim(&self, claim: &Claim<'_>) -> Result<Vec<Claimed>> {
        self.call(
            "claim_emails",
            &with_campaign(
                json!({
                    "max_emails": claim.max,
                    "lease_seconds": claim.lease_secs,
                    "worker": self.worker,
                    "message_id_domain": claim.message_id_domain,
                    "resend_unknown": claim.resend_unknown,
                }),
                claim.campaign,
            ),
            &t!("doing-claiming"),
        )
        .await
    }
}

/// What each claim asks for.
pub(super) struct Claim<'a> {
    pub campaign: Option<Uuid>,
    pub max: usize,
    pub lease_secs: u64,
    pub message_id_domain: &'a str,
    pub resend_unknown: bool,
}

/// The campaign named on the command line (the shared naming rule:
/// id, unique id prefix or unique name); it must have been queued.
pub(super) async fn target_campaign(
    client: &RestClient,
    campaign: &str,
) -> Result<(Uuid, CampaignStatus)> {
    let found = crate::supabase::lookup::campaign(client, campaign).await?;
    let id = Uuid::parse_str(&found.id).map_err(|_| Error::data(t!("deliver-error-no-id")))?;
    if found.status.can_send() {
        return Err(Error::refused(t!(
            "deliver-error-not-queued",
            name = format!("{:?}", found.name),
            status = found.status.to_string()
        ))
        .with_hint(t!("deliver-hint-send-first", id = found.id.as_str())));
    }
    Ok((id, found.status))
}

/// The emails queued and not yet claimed.
pub(super) async fn pending_count(client: &RestClient, campaign: Option<Uuid>) -> Result<u64> {
    let mut query = client
        .from("campaign_analytics")
        .select("pending_count")
        .eq("campaign_status", CampaignStatus::Sending.as_str());
    if let Some(id) = campaign {
        query = query.eq("campaign_id", id.to_string());
    }
    let rows: Vec<Value> = client.fetch(query, &t!("doing-counting-queued")).await?;
    Ok(rows
        .iter()
        .map(|r| r["pending_count"].as_u64().unwrap_or(0))
        .sum())
}

/// Reads the subject and content of the campaigns of `claimed` not read yet.
pub(super) async fn load_templates(
    client: &RestClient,
    claimed: &[Claimed],
    templates: &mut HashMap<Uuid, Arc<Template>>,
) -> Result<()> {
    let missing: HashSet<Uuid> = claimed
        .iter()
        .map(|e| e.campaign_id)
        .filter(|id| !templates.contains_key(id))
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    let ids: Vec<String> = missing.iter().map(Uuid::to_string).collect();
    let rows: Vec<CampaignText> = client
        .fetch(
            client
                .from("email_campaigns")
                .select("id,subject,content")
                .in_("id", ids),
            &t!("doing-reading-content"),
        )
        .await?;
    for row in rows {
        templates.insert(row.id, Arc::new(Template::new(&row.subject, &row.content)));
    }
    Ok(())
}

/// Writes outcomes as they arrive, a batch at a time (at most 100 ms late).
pub(super) async fn record_outcomes(
    db: Db,
    mut rx: mpsc::UnboundedReceiver<Record>,
    held: Held,
    stop: Arc<Stop>,
) {
    let mut buffer: Vec<Record> = Vec::new();
    let mut open = true;
    while open || !buffer.is_empty() {
        if open {
            let deadline = tokio::time::sleep(Duration::from_millis(100));
            tokio::pin!(deadline);
            loop {
                tokio::select! {
                    got = rx.recv() => match got {
                        Some(r) => {
                            buffer.push(r);
                            if buffer.len() >= 500 { break; }
                        }
                        None => { open = false; break; }
                    },
                    _ = &mut deadline => break,
                }
            }
        }
        if buffer.is_empty() {
            continue;
        }
        let batch: Vec<Record> = std::mem::take(&mut buffer);
        let outcomes: Vec<Value> = batch
            .iter()
            .map(|r| json!({"id": r.id, "status": r.status, "response": r.response}))
            .collect();
        let result: Result<i64> = db
            .call(
                "record_email_outcomes",
                &json!({"outcomes": outcomes, "worker": db.worker}),
                &t!("doing-recording-outcomes"),
            )
            .await;
        match result {
            Ok(n) => {
                let lost = batch.len() as u64 - (n.max(0) as u64).min(batch.len() as u64);
                db.tally.not_recorded.fetch_add(lost, Ordering::Relaxed);
            }
            Err(e) => {
                db.tally
                    .not_recorded
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                stop.fail(e);
            }
        }
        let mut held = held.lock().unwrap_or_else(|p| p.into_inner());
        for r in &batch {
            held.remove(&r.id);
        }
    }
}

/// Moves the lease of the emails still held forward, every third of it.
pub(super) async fn keep_leases(db: Db, held: Held, lease: Duration, stop: Arc<Stop>) {
    let every = lease / 3;
    loop {
        tokio::time::sleep(every).await;
        let ids: Vec<Uuid> = held
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect();
        if ids.is_empty() {
            continue;
        }
        let result: Result<i64> = db
            .call(
                "extend_email_leases",
                &json!({"ids": ids, "worker": db.worker, "lease_seconds": lease.as_secs()}),
                &t!("doing-extending-leases"),
            )
            .await;
        if let Err(e) = result {
            stop.fail(e);
            return;
        }
    }
}

/// The arguments with `campaign` when one is named; without it the SQL
/// default (every sending campaign) applies. (A JSON null is not sent: some
/// PostgREST-compatible servers pass it on as an empty string.)
fn with_campaign(mut args: Value, campaign: Option<Uuid>) -> Value {
    if let Some(id) = campaign {
        args["campaign"] = json!(id);
    }
    args
}
