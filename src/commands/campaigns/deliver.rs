//! `mailsync campaigns deliver`: sends the queued emails of a campaign (or
//! of all the user's sending campaigns) through SMTP, as the signed-in user.
//!
//! The steps, as a user would tell them: read the SMTP settings; find the
//! campaign; say which emails have an unknown outcome from an earlier run;
//! check that the SMTP server answers (nothing is claimed when it does not);
//! then claim a batch in the database, send each email, record each outcome
//! as it comes, and claim the next batch, until nothing is left (or, with
//! `--follow`, until Ctrl-C).
//!
//! Never twice: an email is claimed (`pending` → `sending`, with a lease)
//! before the SMTP server sees it, and settled after. The claims, outcomes
//! and leases are SQL functions in `sql/MASTER-DATABASE.sql` (section
//! "Delivery"): `claim_emails`, `record_email_outcomes`,
//! `extend_email_leases`, `unknown_emails`. This module never uses the
//! service role or a database URL.
//! Tests: `tests/it/campaigns_deliver.rs`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use tokio::sync::{mpsc, Notify};
use uuid::Uuid;

use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::output::Output;
use crate::smtp::{
    Attempt, Envelope, Mailer, Recipient, SmtpSession, SmtpSettings, Template, VerpProblem,
};
use crate::supabase::rest::RestClient;
use crate::t;

/// Emails per second unless `--rate` says otherwise: under the sending
/// limits of common providers (Amazon SES starts production accounts at 14/s).
pub const DEFAULT_RATE: f64 = 10.0;
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Most emails one claim takes (one REST call, far inside the 8 s timeout).
pub const MAX_BATCH: usize = 200;
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// Consecutive temporary failures (any worker) after which the run stops:
/// the server is gone, and trying on would only burn the emails' retries.
const GIVE_UP_AFTER: u64 = 25;

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// The campaign (id, or name when unique); `None`: all sending campaigns.
    pub campaign: Option<String>,
    /// Emails per second across all connections; 0 means no limit.
    pub rate: f64,
    /// SMTP connections used at once.
    pub concurrency: usize,
    /// Keep running and pick up campaigns queued later.
    pub follow: bool,
    /// Check and count; claim and send nothing.
    pub dry_run: bool,
    /// Also claim the emails whose outcome is unknown.
    pub resend_unknown: bool,
    /// Tries per email for temporary failures (4xx, dropped connection).
    pub attempts: u32,
    /// Seconds before the first retry; the wait doubles each time.
    pub retry_delay_secs: f64,
    /// Seconds a claim is held before it counts as abandoned.
    pub lease_secs: u64,
    /// Seconds between looks for new work with `--follow`.
    pub poll_secs: f64,
    /// Each email's envelope sender is `local+<email id>@domain` of the
    /// return path (VERP), so a report names its email by its address.
    pub verp: bool,
}

/// An email the database handed to this worker.
#[derive(Debug, Clone, Deserialize)]
struct Claimed {
    id: Uuid,
    campaign_id: Uuid,
    recipient_email: String,
    recipient_organization: Option<String>,
    message_id: String,
    status: String,
}

#[derive(Debug, Deserialize)]
struct CampaignText {
    id: Uuid,
    subject: String,
    content: String,
}

/// One email's unknown outcome, as `unknown_emails` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnknownEmail {
    pub recipient_email: String,
    pub message_id: Option<String>,
    pub claimed_at: Option<String>,
    pub lease_owner: Option<String>,
}

#[derive(Debug, Deserialize)]
struct UnknownReport {
    count: u64,
    emails: Vec<UnknownEmail>,
}

/// The `--json` summary (the contract is in the README).
#[derive(Debug, Default, Serialize)]
pub struct DeliverySummary {
    pub smtp: String,
    pub worker: String,
    pub campaign_id: Option<Uuid>,
    pub dry_run: bool,
    pub claimed: u64,
    pub sent: u64,
    pub bounced: u64,
    pub failed: u64,
    pub suppressed: u64,
    pub retries: u64,
    pub released: u64,
    pub not_recorded: u64,
    pub pending: Option<u64>,
    pub unknown: u64,
    pub unknown_emails: Vec<UnknownEmail>,
    pub resend_unknown: bool,
    pub interrupted: bool,
    pub elapsed_secs: f64,
    pub emails_per_sec: f64,
    pub db_secs: f64,
}

/// Counters shared by the workers, the recorder and the progress bar.
#[derive(Default)]
struct Tally {
    claimed: AtomicU64,
    sent: AtomicU64,
    bounced: AtomicU64,
    failed: AtomicU64,
    suppressed: AtomicU64,
    retries: AtomicU64,
    released: AtomicU64,
    not_recorded: AtomicU64,
    temporary_streak: AtomicU64,
    db: Mutex<DbClock>,
}

/// Wall-clock time during which at least one database call was in flight
/// (calls overlap: claims, outcomes and leases run side by side).
#[derive(Default)]
struct DbClock {
    in_flight: u32,
    since: Option<Instant>,
    busy: Duration,
}

impl Tally {
    fn db_enter(&self) {
        let mut c = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if c.in_flight == 0 {
            c.since = Some(Instant::now());
        }
        c.in_flight += 1;
    }

    fn db_leave(&self) {
        let mut c = self.db.lock().unwrap_or_else(|p| p.into_inner());
        c.in_flight = c.in_flight.saturating_sub(1);
        if c.in_flight == 0 {
            if let Some(since) = c.since.take() {
                c.busy += since.elapsed();
            }
        }
    }

    fn db_busy(&self) -> Duration {
        self.db.lock().unwrap_or_else(|p| p.into_inner()).busy
    }
}

/// Asking the run to stop: Ctrl-C, a database error, or the SMTP server gone.
#[derive(Default)]
struct Stop {
    requested: AtomicBool,
    interrupted: AtomicBool,
    notify: Notify,
    error: Mutex<Option<Error>>,
}

impl Stop {
    fn is_set(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }
    fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }
    fn fail(&self, error: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.request();
    }
}

/// An outcome on its way to the database.
struct Record {
    id: Uuid,
    status: &'static str,
    response: Option<String>,
}

/// The REST calls of a run, timed (the share of time in the database).
#[derive(Clone)]
struct Db {
    client: RestClient,
    worker: String,
    tally: Arc<Tally>,
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
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    validate(options)?;
    let lease = Duration::from_secs(options.lease_secs);
    let settings = smtp_settings(config)?;
    let return_path = settings.from.email.clone();
    if options.verp {
        check_verp(&return_path)?;
    }
    let client = crate::supabase::user::user_client(config, out).await?;
    let worker = worker_id();
    let tally = Arc::new(Tally::default());
    let db = Db {
        client: client.clone(),
        worker: worker.clone(),
        tally: tally.clone(),
    };

    // The campaign, when one is named: it must be queued.
    let campaign = match &options.campaign {
        Some(name) => Some(target_campaign(&client, name).await?),
        None => None,
    };
    let campaign_id = campaign.as_ref().map(|(id, _)| *id);
    if let Some((_, status)) = &campaign {
        if status == "sent" {
            out.note(t!("deliver-already-sent"));
        }
    }

    // Emails an earlier run left without an outcome.
    let unknown: UnknownReport = db
        .call(
            "unknown_emails",
            &with_campaign(json!({"max_rows": 20}), campaign_id),
            &t!("doing-unknown-outcomes"),
        )
        .await?;
    if unknown.count > 0 {
        report_unknown(&unknown, options.resend_unknown, out);
    }
    let pending = pending_count(&client, campaign_id).await?;

    let mailer = Mailer::new(&settings.server, Duration::from_secs(30))?;
    out.debug(format!(
        "deliver: SMTP {} ({}), from {} ({}), return path {return_path}{}, worker {worker}",
        settings.server.masked(),
        settings.server_source,
        settings.from,
        settings.from_source,
        if options.verp { " (VERP)" } else { "" }
    ));
    // A server that is down or refuses us: say so before claiming anything.
    mailer.check().await?;

    let mut summary = DeliverySummary {
        smtp: settings.server.masked(),
        worker: worker.clone(),
        campaign_id,
        dry_run: options.dry_run,
        pending: Some(pending),
        unknown: unknown.count,
        unknown_emails: unknown.emails.clone(),
        resend_unknown: options.resend_unknown,
        ..Default::default()
    };
    if options.dry_run {
        return finish(summary, out);
    }

    let stop = Arc::new(Stop::default());
    let ctrl_c = tokio::spawn(watch_ctrl_c(stop.clone()));
    let progress = progress_bar(
        out,
        pending
            + if options.resend_unknown {
                unknown.count
            } else {
                0
            },
    );
    let started = Instant::now();

    // Outcomes go to the recorder, which writes them in small batches as
    // they come; the emails still held are kept leased by a heartbeat.
    let held: Arc<Mutex<HashSet<Uuid>>> = Arc::default();
    let (record_tx, record_rx) = mpsc::unbounded_channel::<Record>();
    let recorder = tokio::spawn(record_outcomes(
        db.clone(),
        record_rx,
        held.clone(),
        stop.clone(),
    ));
    let heartbeat = tokio::spawn(keep_leases(db.clone(), held.clone(), lease, stop.clone()));

    // The senders.
    let settings = Arc::new(settings);
    let pace = Arc::new(Pace::new(options.rate));
    // One claim ahead: the senders never wait for the next claim, and a
    // worker killed at any instant holds at most two claims' worth.
    let batch = batch_size(options);
    let (job_tx, job_rx) = async_channel(batch);
    let mut senders = Vec::new();
    for _ in 0..options.concurrency {
        senders.push(tokio::spawn(send_emails(Sender {
            jobs: job_rx.clone(),
            mailer: mailer.clone(),
            settings: settings.clone(),
            return_path: return_path.clone(),
            verp: options.verp,
            pace: pace.clone(),
            records: record_tx.clone(),
            tally: tally.clone(),
            stop: stop.clone(),
            progress: progress.clone(),
            attempts: options.attempts.max(1),
            retry_delay: Duration::from_secs_f64(options.retry_delay_secs),
        })));
    }
    drop(job_rx);
    drop(record_tx);

    // Claim, hand out, claim again.
    let mut templates: HashMap<Uuid, Arc<Template>> = HashMap::new();
    while !stop.is_set() {
        let claim: Result<Vec<Claimed>> = db
            .call(
                "claim_emails",
                &with_campaign(
                    json!({
                        "max_emails": batch,
                        "lease_seconds": options.lease_secs,
                        "worker": worker,
                        "message_id_domain": settings.message_id_domain(),
                        "resend_unknown": options.resend_unknown,
                    }),
                    campaign_id,
                ),
                &t!("doing-claiming"),
            )
            .await;
        let claimed = match claim {
            Ok(rows) => rows,
            Err(e) => {
                stop.fail(e);
                break;
            }
        };
        if claimed.is_empty() {
            if !options.follow {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep(Duration::from_secs_f64(options.poll_secs.max(0.1))) => {}
                _ = stop.notify.notified() => {}
            }
            continue;
        }
        tally
            .claimed
            .fetch_add(claimed.len() as u64, Ordering::Relaxed);
        if let Err(e) = load_templates(&client, &claimed, &mut templates).await {
            // Give the claims back untouched: nothing was sent.
            for email in &claimed {
                held_insert(&held, email.id);
                let _ = job_tx.release(email.id).await;
            }
            stop.fail(e);
            break;
        }
        for email in claimed {
            if email.status != "sending" {
                // Suppressed: the database settled it without sending.
                tally.suppressed.fetch_add(1, Ordering::Relaxed);
                progress.inc(1);
                continue;
            }
            held_insert(&held, email.id);
            let template = templates
                .get(&email.campaign_id)
                .cloned()
                .unwrap_or_else(|| Arc::new(Template::new("", "")));
            if job_tx.send(Job::Send(email, template)).await.is_err() {
                break;
            }
        }
        progress.set_length(
            progress
                .length()
                .unwrap_or(0)
                .max(tally.claimed.load(Ordering::Relaxed)),
        );
    }
    job_tx.close();
    for sender in senders {
        let _ = sender.await;
    }
    let _ = recorder.await;
    heartbeat.abort();
    ctrl_c.abort();
    progress.finish_and_clear();

    let elapsed = started.elapsed().as_secs_f64();
    let attempted = tally.sent.load(Ordering::Relaxed)
        + tally.bounced.load(Ordering::Relaxed)
        + tally.failed.load(Ordering::Relaxed);
    summary.claimed = tally.claimed.load(Ordering::Relaxed);
    summary.sent = tally.sent.load(Ordering::Relaxed);
    summary.bounced = tally.bounced.load(Ordering::Relaxed);
    summary.failed = tally.failed.load(Ordering::Relaxed);
    summary.suppressed = tally.suppressed.load(Ordering::Relaxed);
    summary.retries = tally.retries.load(Ordering::Relaxed);
    summary.released = tally.released.load(Ordering::Relaxed);
    summary.not_recorded = tally.not_recorded.load(Ordering::Relaxed);
    summary.interrupted = stop.interrupted.load(Ordering::SeqCst);
    summary.elapsed_secs = round3(elapsed);
    summary.emails_per_sec = if elapsed > 0.0 {
        round3(attempted as f64 / elapsed)
    } else {
        0.0
    };
    summary.db_secs = round3(tally.db_busy().as_secs_f64());
    summary.pending = None;

    let error = stop.error.lock().unwrap_or_else(|p| p.into_inner()).take();
    let interrupted = summary.interrupted;
    let not_recorded = summary.not_recorded;
    finish(summary, out)?;
    if let Some(e) = error {
        return Err(e);
    }
    if not_recorded > 0 {
        return Err(
            Error::failure(t!("deliver-error-not-recorded", count = not_recorded))
                .with_hint(t!("deliver-hint-not-recorded")),
        );
    }
    if interrupted {
        return Err(Error::new(
            ErrorKind::Interrupted,
            t!("deliver-error-interrupted"),
        ));
    }
    Ok(())
}

fn validate(options: &Options) -> Result<()> {
    if !options.rate.is_finite() || options.rate < 0.0 {
        return Err(Error::usage(t!("deliver-error-rate")));
    }
    if options.concurrency == 0 || options.concurrency > 64 {
        return Err(Error::usage(t!("deliver-error-concurrency")));
    }
    if options.attempts == 0 || options.attempts > 10 {
        return Err(Error::usage(t!("deliver-error-attempts")));
    }
    if options.lease_secs < 10 {
        return Err(Error::usage(t!("deliver-error-lease")));
    }
    if !options.retry_delay_secs.is_finite() || options.retry_delay_secs < 0.0 {
        return Err(Error::usage(t!("deliver-error-retry-delay")));
    }
    Ok(())
}

/// The setting that names the return path, for the advice.
const RETURN_PATH_SETTING: &str = "MAILSYNC_RETURN_PATH";

/// A return path that cannot take `+<email id>` is refused before anything
/// is claimed.
fn check_verp(return_path: &lettre::Address) -> Result<()> {
    let token_len = Uuid::nil().hyphenated().to_string().len();
    let address = return_path.to_string();
    let message = match crate::smtp::verp_problem(return_path, token_len) {
        None => return Ok(()),
        Some(VerpProblem::Plus) => t!("deliver-error-verp-plus", address = address),
        Some(VerpProblem::TooLong) => t!("deliver-error-verp-too-long", address = address),
    };
    Err(Error::usage(message).with_hint(t!("deliver-hint-verp", name = RETURN_PATH_SETTING)))
}

/// The SMTP settings, from the same sources as every other setting.
pub fn smtp_settings(config: &Config) -> Result<SmtpSettings> {
    let local_api_port = if config.is_local() {
        config.supabase_url.value.port_or_known_default()
    } else {
        None
    };
    SmtpSettings::resolve(|name| config.setting(name), local_api_port)
}

/// Claims are sized to about two seconds of sending at the requested rate,
/// so a worker killed at any instant leaves few emails with an unknown
/// outcome, and to at least one email per connection.
fn batch_size(options: &Options) -> usize {
    if options.rate == 0.0 {
        return MAX_BATCH;
    }
    ((options.rate * 2.0).ceil() as usize)
        .max(options.concurrency)
        .min(MAX_BATCH)
}

fn worker_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".into());
    let tag = Uuid::new_v4().simple().to_string();
    format!("{host}:{}:{}", std::process::id(), &tag[..8])
}

/// The campaign named on the command line (the shared naming rule:
/// id, unique id prefix or unique name); it must have been queued.
async fn target_campaign(client: &RestClient, campaign: &str) -> Result<(Uuid, String)> {
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
    Ok((id, found.status.as_str().to_string()))
}

async fn pending_count(client: &RestClient, campaign: Option<Uuid>) -> Result<u64> {
    let mut query = client
        .from("campaign_analytics")
        .select("pending_count")
        .eq("campaign_status", "sending");
    if let Some(id) = campaign {
        query = query.eq("campaign_id", id.to_string());
    }
    let rows: Vec<Value> = client.fetch(query, &t!("doing-counting-queued")).await?;
    Ok(rows
        .iter()
        .map(|r| r["pending_count"].as_u64().unwrap_or(0))
        .sum())
}

fn report_unknown(unknown: &UnknownReport, resend: bool, out: &Output) {
    out.note(t!(
        "deliver-unknown",
        count = unknown.count,
        resend = if resend { "yes" } else { "no" }
    ));
    for e in unknown.emails.iter().take(5) {
        out.note(t!(
            "deliver-unknown-email",
            email = e.recipient_email.as_str(),
            message_id = e.message_id.as_deref().unwrap_or("?"),
            claimed_at = e.claimed_at.as_deref().unwrap_or("?"),
            owner = e.lease_owner.as_deref().unwrap_or("?")
        ));
    }
    if unknown.count > 5 {
        out.note(t!("deliver-unknown-more", count = unknown.count - 5));
    }
}

async fn load_templates(
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

fn held_insert(held: &Mutex<HashSet<Uuid>>, id: Uuid) {
    held.lock().unwrap_or_else(|p| p.into_inner()).insert(id);
}

async fn watch_ctrl_c(stop: Arc<Stop>) {
    if tokio::signal::ctrl_c().await.is_ok() {
        stop.interrupted.store(true, Ordering::SeqCst);
        stop.request();
        eprintln!("\n{}", t!("deliver-stopping"));
        if tokio::signal::ctrl_c().await.is_ok() {
            std::process::exit(130);
        }
    }
}

/// Spaces sends `1/rate` apart across all connections.
struct Pace {
    period: Option<Duration>,
    next: Mutex<Instant>,
}

impl Pace {
    fn new(rate: f64) -> Self {
        Self {
            period: (rate > 0.0).then(|| Duration::from_secs_f64(1.0 / rate)),
            next: Mutex::new(Instant::now()),
        }
    }

    async fn wait(&self) {
        let Some(period) = self.period else { return };
        let slot = {
            let mut next = self.next.lock().unwrap_or_else(|p| p.into_inner());
            let now = Instant::now();
            let slot = (*next).max(now);
            *next = slot + period;
            slot
        };
        tokio::time::sleep_until(tokio::time::Instant::from_std(slot)).await;
    }
}

enum Job {
    Send(Claimed, Arc<Template>),
    Release(Uuid),
}

/// A bounded multi-consumer queue of jobs (tokio's mpsc has one consumer).
#[derive(Clone)]
struct JobSender(mpsc::Sender<Job>);

impl JobSender {
    async fn send(&self, job: Job) -> std::result::Result<(), ()> {
        self.0.send(job).await.map_err(|_| ())
    }
    async fn release(&self, id: Uuid) -> std::result::Result<(), ()> {
        self.send(Job::Release(id)).await
    }
    fn close(self) {}
}

#[derive(Clone)]
struct JobReceiver(Arc<tokio::sync::Mutex<mpsc::Receiver<Job>>>);

impl JobReceiver {
    async fn recv(&self) -> Option<Job> {
        self.0.lock().await.recv().await
    }
}

fn async_channel(capacity: usize) -> (JobSender, JobReceiver) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    (
        JobSender(tx),
        JobReceiver(Arc::new(tokio::sync::Mutex::new(rx))),
    )
}

struct Sender {
    jobs: JobReceiver,
    mailer: Mailer,
    settings: Arc<SmtpSettings>,
    /// Where reports and bounces go back to (the envelope sender).
    return_path: lettre::Address,
    verp: bool,
    pace: Arc<Pace>,
    records: mpsc::UnboundedSender<Record>,
    tally: Arc<Tally>,
    stop: Arc<Stop>,
    progress: ProgressBar,
    attempts: u32,
    retry_delay: Duration,
}

/// One connection's worth of work: take an email, send it (retrying
/// temporary failures with backoff), hand its outcome to the recorder.
/// Once a stop is asked, emails not yet tried are released untouched.
async fn send_emails(s: Sender) {
    let mut session = s.mailer.session();
    while let Some(job) = s.jobs.recv().await {
        let (email, template) = match job {
            Job::Send(email, template) => (email, template),
            Job::Release(id) => {
                release(&s, id);
                continue;
            }
        };
        if s.stop.is_set() {
            release(&s, email.id);
            continue;
        }
        let record = deliver_one(&s, &mut session, &email, &template).await;
        match record.status {
            "sent" => &s.tally.sent,
            "bounced" => &s.tally.bounced,
            "failed" => &s.tally.failed,
            _ => &s.tally.released,
        }
        .fetch_add(1, Ordering::Relaxed);
        if record.status != "pending" {
            s.progress.inc(1);
            let (accepted, bounced) = (
                s.tally.sent.load(Ordering::Relaxed),
                s.tally.bounced.load(Ordering::Relaxed),
            );
            s.progress.set_message(crate::t!(
                "deliver-progress-counts",
                sent = accepted + bounced,
                bounced = bounced,
                failed = s.tally.failed.load(Ordering::Relaxed)
            ));
        }
        let _ = s.records.send(record);
    }
    session.close().await;
}

fn release(s: &Sender, id: Uuid) {
    s.tally.released.fetch_add(1, Ordering::Relaxed);
    let _ = s.records.send(Record {
        id,
        status: "pending",
        response: None,
    });
}

async fn deliver_one(
    s: &Sender,
    session: &mut SmtpSession,
    email: &Claimed,
    template: &Template,
) -> Record {
    let to = Recipient {
        email: &email.recipient_email,
        organization: email.recipient_organization.as_deref(),
    };
    let message = match template.message(&s.settings, &to, &email.message_id) {
        Ok(m) => m,
        Err(why) => {
            return Record {
                id: email.id,
                status: "failed",
                response: Some(format!("not sent: {why}")),
            }
        }
    };
    let envelope_id = email.id.hyphenated().to_string();
    let verp = match s.verp {
        false => None,
        true => match crate::smtp::verp_address(&s.return_path, &envelope_id) {
            Ok(address) => Some(address),
            Err(why) => {
                return Record {
                    id: email.id,
                    status: "failed",
                    response: Some(format!("not sent: no VERP return path: {why}")),
                }
            }
        },
    };
    let envelope = Envelope {
        return_path: verp.as_ref().unwrap_or(&s.return_path),
        envelope_id: &envelope_id,
    };
    let mut delay = s.retry_delay;
    let mut tried = 0;
    loop {
        s.pace.wait().await;
        tried += 1;
        let attempt = session.send(&message, &envelope).await;
        if !matches!(attempt, Attempt::Temporary(_)) {
            s.tally.temporary_streak.store(0, Ordering::Relaxed);
        }
        match attempt {
            Attempt::Accepted(reply) => {
                return Record {
                    id: email.id,
                    status: "sent",
                    response: Some(reply),
                }
            }
            Attempt::Bounced(reply) => {
                return Record {
                    id: email.id,
                    status: "bounced",
                    response: Some(reply),
                }
            }
            Attempt::Refused(reply) => {
                return Record {
                    id: email.id,
                    status: "failed",
                    response: Some(reply),
                }
            }
            Attempt::Temporary(reply) => {
                let streak = s.tally.temporary_streak.fetch_add(1, Ordering::Relaxed) + 1;
                if streak >= GIVE_UP_AFTER {
                    s.stop.fail(Error::failure(t!(
                        "deliver-error-smtp-down",
                        server = s.settings.server.masked(),
                        count = streak.to_string(),
                        reply = reply.as_str()
                    )));
                }
                // A temporary refusal means the server did not take it: when
                // stopping, or out of tries, nothing was delivered.
                if s.stop.is_set() {
                    return Record {
                        id: email.id,
                        status: "pending",
                        response: None,
                    };
                }
                if tried >= s.attempts {
                    return Record {
                        id: email.id,
                        status: "failed",
                        response: Some(format!("{reply} (gave up after {tried} tries)")),
                    };
                }
                s.tally.retries.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = s.stop.notify.notified() => {}
                }
                delay = delay.saturating_mul(2);
            }
        }
    }
}

/// Writes outcomes as they arrive, a batch at a time (at most 100 ms late).
async fn record_outcomes(
    db: Db,
    mut rx: mpsc::UnboundedReceiver<Record>,
    held: Arc<Mutex<HashSet<Uuid>>>,
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
async fn keep_leases(db: Db, held: Arc<Mutex<HashSet<Uuid>>>, lease: Duration, stop: Arc<Stop>) {
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

fn progress_bar(out: &Output, total: u64) -> ProgressBar {
    if !out.interactive() || out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        crate::output::progress_style(&format!(
            "{} [{{bar:30}}] {{count}}/{{total}} · {{msg}} · {{rate}} · {}",
            crate::t!("deliver-progress"),
            crate::t!("progress-eta", eta = "{eta}"),
        ))
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn finish(summary: DeliverySummary, out: &Output) -> Result<()> {
    if out.json {
        return out.json(&summary);
    }
    if summary.dry_run {
        out.print(crate::t!(
            "deliver-dry-run",
            queued = summary.pending.unwrap_or(0),
            unknown = summary.unknown,
            smtp = summary.smtp.as_str()
        ));
        return Ok(());
    }
    // "sent" as on every screen: what left the sender, bounced included.
    let lang = crate::i18n::current();
    out.print(crate::t!(
        "deliver-done",
        smtp = summary.smtp.as_str(),
        sent = summary.sent + summary.bounced,
        accepted = summary.sent,
        bounced = summary.bounced,
        failed = summary.failed,
        suppressed = summary.suppressed,
        retries = summary.retries,
        seconds = lang.seconds(summary.elapsed_secs),
        rate = lang.per_second(summary.emails_per_sec)
    ));
    if summary.released > 0 {
        out.print(crate::t!("deliver-released", count = summary.released));
    }
    if summary.claimed == 0 && summary.unknown == 0 {
        out.print(crate::t!("deliver-nothing"));
    }
    Ok(())
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

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
