//! The database side of a run, all through the user's REST session: the
//! campaign and its queue, the claims (`claim_emails`), the outcomes
//! written as they come (`record_email_outcomes`), the leases kept alive
//! while emails are held (`extend_email_leases`) and the emails an earlier
//! run left without an outcome (`unknown_emails`).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Deserialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

use super::journal::Journal;
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
    /// `sending` (held by this worker's claim), or already settled by the
    /// database (a suppressed address).
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

    /// Records outcomes: how many are stored.
    pub(super) async fn record(&self, records: &[Record]) -> Result<i64> {
        Ok(self.call_record(records).await?.recorded)
    }

    async fn call_record(&self, records: &[Record]) -> Result<Recorded> {
        self.call(
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
        .await
    }

    /// Gives back what this (dead) worker held, except the emails it had
    /// started: how many.
    pub(super) async fn release_worker(&self, started: &[Uuid]) -> Result<i64> {
        self.call(
            "release_worker_emails",
            &json!({"worker": self.worker, "started": started}),
            &t!("doing-recording-outcomes"),
        )
        .await
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

    /// Claims up to `max` emails for `lease_secs` seconds, handed to SMTP
    /// by the same call (one claim row, no write to the emails).
    pub(super) async fn claim(&self, claim: &Claim<'_>, max: usize) -> Result<Vec<Claimed>> {
        self.call(
            "claim_emails",
            &with_campaign(
                json!({
                    "max_emails": max.min(claim.max),
                    "lease_seconds": claim.lease_secs,
                    "worker": self.worker,
                    "message_id_domain": claim.message_id_domain,
                    "resend_unknown": claim.resend_unknown,
                    "hand": true,
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

/// How many emails this worker has handed to SMTP without a recorded
/// outcome (`open`), and how many it may (`window`): the claimer claims only
/// into the room left, the recorder frees it as outcomes are stored.
pub(super) struct Flow {
    open: AtomicUsize,
    window: AtomicUsize,
    /// Rung by the recorder after each call (one waiter: the claimer).
    freed: Notify,
}

impl Flow {
    pub(super) fn new(window: usize) -> Self {
        Self {
            open: AtomicUsize::new(0),
            window: AtomicUsize::new(window.max(1)),
            freed: Notify::new(),
        }
    }

    /// Room for a claim once a good part of the window is free (about one
    /// call's worth), or whatever is free when nothing is in doubt; `None`
    /// while the claimer should wait.
    pub(super) fn room(&self) -> Option<usize> {
        let window = self.window.load(Ordering::Relaxed);
        let open = self.open.load(Ordering::Relaxed);
        let room = window.saturating_sub(open);
        (room > 0 && (open == 0 || room * CLAIM_WHEN_FREE >= window)).then_some(room)
    }

    /// Waits until the recorder has stored something (or `stop`).
    pub(super) async fn wait(&self, stop: &Stop) {
        let stopped = stop.notify.notified();
        tokio::pin!(stopped);
        stopped.as_mut().enable();
        if stop.is_set() {
            return;
        }
        tokio::select! {
            _ = self.freed.notified() => {}
            _ = stopped => {}
        }
    }

    pub(super) fn handed(&self, count: usize) {
        self.open.fetch_add(count, Ordering::Relaxed);
    }

    fn settled(&self, count: usize) {
        let _ = self
            .open
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |o| {
                Some(o.saturating_sub(count))
            });
    }
}

/// A claim waits until a quarter of the window is free: a claim costs the
/// database about as much as recording half its emails, and at the wire's
/// speed the connections ran dry while a claim waited for half the window
/// (20 000 emails over 8 connections took 15-20 % longer).
const CLAIM_WHEN_FREE: usize = 4;

/// A recording call carries a quarter of the window in use, or what came
/// while the recorder gathered ([`gather_time`]).
const RECORD_SHARE: usize = 4;

/// The recorder gathers outcomes for a call this long at least, and at most
/// [`GATHER_MAX`].
pub(super) const GATHER_MIN: Duration = Duration::from_millis(10);
pub(super) const GATHER_MAX: Duration = Duration::from_millis(40);

/// How long the recorder waits for a call's worth of outcomes: the time a
/// quarter of the window takes to come at the rate asked, within
/// [`GATHER_MIN`]..[`GATHER_MAX`]; at the wire's speed (no rate), the least.
/// Outcomes waiting for a call hold room in the window: at 40 ms, the
/// connections waited for claims at the wire's speed; at 10 ms, a run of a
/// few hundred emails a second makes a few calls a second more.
pub(super) fn gather_time(rate: f64, window: usize) -> Duration {
    if rate <= 0.0 || !rate.is_finite() {
        return GATHER_MIN;
    }
    Duration::from_secs_f64((window / RECORD_SHARE).max(1) as f64 / rate)
        .clamp(GATHER_MIN, GATHER_MAX)
}

/// What the recorder shares with the run.
pub(super) struct Recorder {
    pub db: Db,
    /// Outcomes from the connections (and the claimer's releases).
    pub outcomes: mpsc::UnboundedReceiver<Record>,
    pub flow: Arc<Flow>,
    /// The largest window, and the least it shrinks to.
    pub max_window: usize,
    pub min_window: usize,
    /// How long to wait for a call's worth of outcomes ([`gather_time`]).
    pub gather: Duration,
    pub held: Held,
    pub stop: Arc<Stop>,
    pub journal: Option<Arc<Journal>>,
}

/// The database's answer to `record_email_outcomes`.
#[derive(Debug, Deserialize)]
struct Recorded {
    recorded: i64,
}

/// Records outcomes, one call per round trip: the next call leaves as soon
/// as the previous one returned, carrying whatever accumulated (at most
/// 1000). Each call frees room in the hand-off window, which adapts to the
/// pace: about four calls' worth of outcomes, so the connections never wait
/// for a claim while few emails are in doubt when the server is slow. A
/// worker that dies leaves at most the window with an unknown outcome
/// (fewer with its journal replayed: only those the SMTP server had
/// started).
pub(super) async fn record_outcomes(mut r: Recorder) {
    let tally = r.db.tally.clone();
    let mut batch: Vec<Record> = Vec::new();
    loop {
        if batch.is_empty() {
            match r.outcomes.recv().await {
                Some(record) => batch.push(record),
                None => return,
            }
        }
        // A call carries a quarter of the window or what came in a few
        // milliseconds, whichever is first: each call costs the database a
        // fixed part, so many small ones cost more than a few big ones.
        let want = (r.flow.window.load(Ordering::Relaxed) / RECORD_SHARE).clamp(1, MAX_OUTCOMES);
        let deadline = tokio::time::Instant::now() + r.gather;
        while batch.len() < want && !r.stop.is_set() {
            match tokio::time::timeout_at(deadline, r.outcomes.recv()).await {
                Ok(Some(record)) => batch.push(record),
                Ok(None) | Err(_) => break,
            }
        }
        while batch.len() < MAX_OUTCOMES {
            match r.outcomes.try_recv() {
                Ok(record) => batch.push(record),
                Err(_) => break,
            }
        }
        let answer: Result<Recorded> = r.db.call_record(&batch).await;
        let window = r.flow.window.load(Ordering::Relaxed);
        r.flow.window.store(
            (GROW_WITH_BATCH * batch.len())
                .max(window * 3 / 4)
                .clamp(r.min_window.max(1), r.max_window.max(1)),
            Ordering::Relaxed,
        );
        match answer {
            Ok(answer) => {
                if let Some(journal) = &r.journal {
                    journal.recorded(batch.iter().map(|o| o.id));
                }
                let lost =
                    batch.len() as u64 - (answer.recorded.max(0) as u64).min(batch.len() as u64);
                tally.not_recorded.fetch_add(lost, Ordering::Relaxed);
            }
            Err(e) => {
                // (The journal keeps those outcomes: the worker's journal
                // is not removed, and the next run records them.)
                tally
                    .not_recorded
                    .fetch_add(batch.len() as u64, Ordering::Relaxed);
                r.stop.fail(e);
            }
        }
        {
            let mut held = r.held.lock().unwrap_or_else(|p| p.into_inner());
            for o in &batch {
                held.remove(&o.id);
            }
        }
        r.flow.settled(batch.len());
        r.flow.freed.notify_one();
        batch.clear();
    }
}

/// The window in use is this many times the last call's outcomes.
const GROW_WITH_BATCH: usize = 4;

/// Most outcomes per call (the SQL function's bound).
const MAX_OUTCOMES: usize = 1000;

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
