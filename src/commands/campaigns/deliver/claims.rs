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

use super::journal::Journal;
use super::queue::QueueSender;
use super::senders::Job;
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

impl Record {
    /// A claimed email given back untried.
    pub(super) fn release(id: Uuid) -> Self {
        Self {
            id,
            status: EmailStatus::Pending,
            response: None,
        }
    }
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

    /// Records outcomes (nothing handed): how many are stored.
    pub(super) async fn record(&self, records: &[Record]) -> Result<i64> {
        let answer: Recorded = self
            .call(
                "record_email_outcomes",
                &json!({
                    "outcomes": records
                        .iter()
                        .map(|o| json!({"id": o.id, "status": o.status, "response": o.response}))
                        .collect::<Vec<Value>>(),
                    "worker": self.worker,
                }),
                &t!("doing-recording-outcomes"),
            )
            .await?;
        Ok(answer.recorded)
    }

    /// Settles the campaign's unknown outcomes as `outcome`: how many.
    pub(super) async fn settle_unknown(&self, campaign: Uuid, outcome: &str) -> Result<u64> {
        let mut settled = 0;
        loop {
            let n: i64 = self
                .call(
                    "settle_unknown_emails",
                    &json!({"campaign": campaign, "outcome": outcome}),
                    &t!("doing-recording-outcomes"),
                )
                .await?;
            settled += n.max(0) as u64;
            if n < 1000 {
                return Ok(settled);
            }
        }
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

/// What the recorder shares with the run.
pub(super) struct Recorder {
    pub db: Db,
    /// Outcomes from the connections.
    pub outcomes: mpsc::UnboundedReceiver<Record>,
    /// Claimed emails (or releases), in claim order.
    pub claimed: mpsc::Receiver<Job>,
    /// Emails the database confirmed as handed, for the connections.
    pub ready: QueueSender<Job>,
    /// Most emails handed and not yet recorded at any instant.
    pub window: usize,
    /// The window at the start, and the least it shrinks to.
    pub min_window: usize,
    pub held: Held,
    pub stop: Arc<Stop>,
    pub journal: Option<Arc<Journal>>,
}

/// The database's answer to `record_email_outcomes`.
#[derive(Debug, Deserialize)]
struct Recorded {
    recorded: i64,
    handed: Vec<Uuid>,
}

/// Records outcomes and hands emails to the connections, in one call per
/// round trip: the next call leaves as soon as the previous one returned,
/// carrying whatever accumulated (at most 1000 outcomes). An email goes to
/// a connection only once the database has marked it handed, and at most
/// `window` emails are handed without a recorded outcome, so a worker that
/// dies leaves at most that many with an unknown outcome (fewer with its
/// journal replayed: only those the SMTP server had started).
pub(super) async fn record_and_hand(mut r: Recorder) {
    let mut outcomes: Vec<Record> = Vec::new();
    let mut to_hand: Vec<(Claimed, Arc<Template>)> = Vec::new();
    // Handed by this worker, outcome not yet recorded.
    let mut open: HashSet<Uuid> = HashSet::new();
    let tally = r.db.tally.clone();
    let mut outcomes_open = true;
    let mut claimed_open = true;
    let mut ready = Some(r.ready);
    // The window in use: about two calls' worth of outcomes, so that the
    // connections never wait for a hand-off while few emails are in doubt
    // when the server is slow. It doubles while the connections keep up
    // with it, and shrinks slowly when they do not.
    let mut window = r.min_window.clamp(1, r.window.max(1));
    loop {
        while outcomes.len() < MAX_OUTCOMES {
            match r.outcomes.try_recv() {
                Ok(record) => outcomes.push(record),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => {
                    outcomes_open = false;
                    break;
                }
            }
        }
        let room = window.saturating_sub(open.len());
        while claimed_open && to_hand.len() < room {
            match r.claimed.try_recv() {
                Ok(job) => take_job(job, &r.stop, &tally, &mut to_hand, &mut outcomes),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => claimed_open = false,
            }
        }
        if !claimed_open && to_hand.is_empty() {
            // Nothing more to hand: the connections finish what they have.
            ready = None;
        }
        if outcomes.is_empty() && to_hand.is_empty() {
            if !outcomes_open && !claimed_open {
                return;
            }
            let room = window.saturating_sub(open.len());
            tokio::select! {
                got = r.outcomes.recv(), if outcomes_open => match got {
                    Some(record) => outcomes.push(record),
                    None => outcomes_open = false,
                },
                got = r.claimed.recv(), if claimed_open && room > 0 => match got {
                    Some(job) => take_job(job, &r.stop, &tally, &mut to_hand, &mut outcomes),
                    None => claimed_open = false,
                },
                // Every connection is gone and the window is full: nothing
                // more can be sent (what is claimed is claimable again once
                // its lease ends, never handed).
                else => return,
            }
            continue;
        }
        if r.stop.is_set() {
            // A stop hands nothing more: what was about to go is released.
            for (email, _) in to_hand.drain(..) {
                tally.released.fetch_add(1, Ordering::Relaxed);
                outcomes.push(Record::release(email.id));
            }
        }

        let batch: Vec<Record> = std::mem::take(&mut outcomes);
        let handing: Vec<(Claimed, Arc<Template>)> = std::mem::take(&mut to_hand);
        let ids: Vec<Uuid> = handing.iter().map(|(e, _)| e.id).collect();
        if let Some(journal) = &r.journal {
            journal.handing(&ids);
        }
        let args = json!({
            "outcomes": batch
                .iter()
                .map(|o| json!({"id": o.id, "status": o.status, "response": o.response}))
                .collect::<Vec<Value>>(),
            "worker": r.db.worker,
            "handed": ids,
        });
        let answer: Result<Recorded> =
            r.db.call(
                "record_email_outcomes",
                &args,
                &t!("doing-recording-outcomes"),
            )
            .await;
        for o in &batch {
            open.remove(&o.id);
        }
        window = (2 * batch.len())
            .max(window * 3 / 4)
            .clamp(r.min_window.max(1), r.window.max(1));
        match answer {
            Ok(answer) => {
                if let Some(journal) = &r.journal {
                    journal.recorded(batch.iter().map(|o| o.id));
                }
                let lost =
                    batch.len() as u64 - (answer.recorded.max(0) as u64).min(batch.len() as u64);
                tally.not_recorded.fetch_add(lost, Ordering::Relaxed);
                let confirmed: HashSet<Uuid> = answer.handed.into_iter().collect();
                for (email, template) in handing {
                    if !confirmed.contains(&email.id) {
                        // The lease was lost: another worker may hold it now.
                        tally.released.fetch_add(1, Ordering::Relaxed);
                        unhold(&r.held, email.id);
                        if let Some(journal) = &r.journal {
                            journal.recorded(std::iter::once(email.id));
                        }
                        continue;
                    }
                    let id = email.id;
                    let taken = match &ready {
                        Some(ready) => ready.send(Job::Send(email, template)).await.is_ok(),
                        None => false,
                    };
                    if taken {
                        open.insert(id);
                    } else {
                        tally.released.fetch_add(1, Ordering::Relaxed);
                        outcomes.push(Record::release(id));
                    }
                }
            }
            Err(e) => {
                tally
                    .not_recorded
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                r.stop.fail(e);
                // Unknown whether the database marked them: never sent, and
                // given back (the next call, if any, releases them).
                for (email, _) in handing {
                    tally.released.fetch_add(1, Ordering::Relaxed);
                    outcomes.push(Record::release(email.id));
                }
            }
        }
        // (After an error the journal keeps those outcomes: the worker's
        // journal is not removed, and the next run records them.)
        let mut held = r.held.lock().unwrap_or_else(|p| p.into_inner());
        for o in &batch {
            held.remove(&o.id);
        }
    }
}

/// Most outcomes per call (the SQL function's bound).
const MAX_OUTCOMES: usize = 1000;

fn take_job(
    job: Job,
    stop: &Stop,
    tally: &Tally,
    to_hand: &mut Vec<(Claimed, Arc<Template>)>,
    outcomes: &mut Vec<Record>,
) {
    let id = match job {
        Job::Send(email, template) if !stop.is_set() => {
            to_hand.push((email, template));
            return;
        }
        Job::Send(email, _) => email.id,
        Job::Release(id) => id,
    };
    tally.released.fetch_add(1, Ordering::Relaxed);
    outcomes.push(Record::release(id));
}

fn unhold(held: &Held, id: Uuid) {
    held.lock().unwrap_or_else(|p| p.into_inner()).remove(&id);
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
