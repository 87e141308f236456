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
//! Never twice: an email is claimed (a row of `email_claims` holds it, with
//! a lease; the email stays `pending`) before the SMTP server sees it, and
//! settled after (its one write). The claims, outcomes
//! and leases are SQL functions in `sql/MASTER-DATABASE.sql` (section
//! "Delivery"): `claim_emails`, `record_email_outcomes`,
//! `extend_email_leases`, `unknown_emails`, `release_worker_emails`. This module never uses the
//! service role or a database URL.
//!
//! Here: the run's story, step by step; `claims` (the database side:
//! claims, the hand-off window, outcomes, leases), `journal` (the worker's local
//! record, replayed after a crash), `senders` (the SMTP connections), `pacing`
//! (the rate limiter), `queue` (emails on their way to the connections),
//! `stop` (Ctrl-C and errors), `summary` (counters, progress, the report).
//! Tests: `tests/it/campaigns_deliver.rs`.

mod claims;
mod journal;
mod pacing;
mod queue;
mod senders;
mod stop;
mod summary;

pub use summary::{DeliverySummary, UnknownEmail};

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use uuid::Uuid;

use crate::domain::{CampaignStatus, EmailStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::output::Output;
use crate::settings::Config;
use crate::smtp::{Mailer, Template, VerpProblem};
use crate::t;
use claims::{Claim, Claimed, Db, Flow, Held, Record, Recorder};
use journal::Journal;
use pacing::Pace;
use queue::queue;
use senders::{Job, Sender};
use stop::Stop;
use summary::Tally;

/// Emails per second unless `--rate` says otherwise: under the sending
/// limits of common providers (Amazon SES starts production accounts at 14/s).
pub const DEFAULT_RATE: f64 = 10.0;
pub const DEFAULT_CONCURRENCY: usize = 4;
/// Most emails one claim takes (one REST call, far inside the 8 s timeout).
pub const MAX_BATCH: usize = 1000;
pub const DEFAULT_LEASE: Duration = Duration::from_secs(120);
/// Tries per email for temporary failures.
pub const DEFAULT_ATTEMPTS: u32 = 3;
/// Seconds before the first retry.
pub const DEFAULT_RETRY_DELAY_SECS: f64 = 2.0;
/// Seconds between looks for new work with `--follow`.
pub const DEFAULT_POLL_SECS: f64 = 2.0;
/// Emails handed to SMTP without a recorded outcome, per connection, at
/// most. The window in use adapts (about four recording calls' worth of
/// sending, at least 2 per connection): a fast server on a near network
/// needs dozens per connection to keep busy during a round trip, a slow
/// one only a couple. The outcomes are recorded a call of up to 1000 at a
/// time, and a call of 100 costs the database a third of one of 1000: at
/// 128 per connection (1000 in all), 20 000 emails over 8 connections took
/// 20 % longer (calls of about 150 outcomes), at 64 a further 12 %; at 512
/// (4000 in all), 5 % less, for twice the emails in doubt when a machine
/// is lost.
pub const HANDOFF_PER_CONNECTION: usize = 256;
/// Most emails handed without a recorded outcome in all (two claims' worth).
pub const MAX_HANDOFF: usize = 2000;

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
    /// Settle the campaign's unknown outcomes as `sent` or `failed` first.
    pub settle_unknown: Option<String>,
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

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    validate(options)?;
    let settings = config.smtp_settings()?;
    let return_path = settings.return_path.clone();
    if options.verp {
        check_verp(&return_path)?;
    }
    let token = crate::supabase::user::access_token(config, out).await?;
    let user_id: Arc<str> = crate::supabase::user::subject(token.expose())
        .unwrap_or_default()
        .into();
    let client = crate::supabase::rest::RestClient::new(config, &token)?;
    let worker = worker_id();
    let tally = Arc::new(Tally::default());
    let db = Db {
        client: client.clone(),
        worker: worker.clone(),
        tally: tally.clone(),
    };

    // The campaign, when one is named: it must be queued.
    let campaign = match &options.campaign {
        Some(name) => Some(claims::target_campaign(&client, name).await?),
        None => None,
    };
    let campaign_id = campaign.map(|(id, _)| id);
    if let Some((_, CampaignStatus::Sent)) = campaign {
        out.note(t!("deliver-already-sent"));
    }

    // What workers that died on this machine left in their journals.
    let journal_dir = config
        .session_dir()
        .ok()
        .map(|d| d.join("deliver").join(journal_dir_name(&user_id)));
    if let Some(dir) = &journal_dir {
        if !options.dry_run {
            replay_journals(&db, dir, out).await?;
        }
    }

    // Unknown outcomes the operator has looked up.
    if let (Some(outcome), Some(id)) = (&options.settle_unknown, campaign_id) {
        if !options.dry_run {
            let settled = db.settle_unknown(id, outcome).await?;
            out.note(t!(
                "deliver-settled-unknown",
                count = settled,
                outcome = outcome.as_str()
            ));
        }
    }

    // Emails an earlier run left without an outcome, and the queue's size.
    let unknown = db.unknown(campaign_id).await?;
    if unknown.count > 0 {
        report_unknown(&unknown, options.resend_unknown, out);
    }
    let pending = claims::pending_count(&client, campaign_id).await?;

    // A server that is down or refuses us: say so before claiming anything.
    let mailer = Mailer::new(
        &settings.server,
        &settings.extra_roots,
        Duration::from_secs(30),
    )?;
    out.debug(format!(
        "deliver: SMTP {} ({}), from {} ({}), return path {return_path} ({}){}, worker {worker}",
        settings.server.masked(),
        settings.server_source,
        settings.from,
        settings.from_source,
        settings.return_path_source,
        if options.verp { ", VERP" } else { "" }
    ));
    if !mailer.check().await? {
        out.note(t!(
            "deliver-note-no-dsn",
            server = settings.server.masked(),
            return_path = return_path.to_string()
        ));
    }

    let mut summary = DeliverySummary {
        smtp: settings.server.masked(),
        worker,
        campaign_id,
        dry_run: options.dry_run,
        pending: Some(pending),
        unknown: unknown.count,
        unknown_emails: unknown.emails.clone(),
        resend_unknown: options.resend_unknown,
        ..Default::default()
    };
    if options.dry_run {
        return summary::finish(summary, out);
    }

    // Claim, send, record, until nothing is left (or Ctrl-C).
    let stop = Arc::new(Stop::default());
    let ctrl_c = tokio::spawn(stop::watch_ctrl_c(stop.clone()));
    let expected = pending
        + if options.resend_unknown {
            unknown.count
        } else {
            0
        };
    let progress = summary::progress_bar(out, expected);
    let started = Instant::now();

    // Claims are handed to SMTP by the same call and go straight to the
    // connections; the recorder stores the outcomes (one call per round
    // trip) and so frees room for the next claim: at most the hand-off
    // window is ever in doubt. The emails held are kept leased by a
    // heartbeat. The journal notes each step on this machine.
    let journal = journal_dir.as_deref().and_then(|dir| {
        Journal::create(dir, &db.worker)
            .map_err(|e| out.debug(format!("deliver: no journal in {}: {e}", dir.display())))
            .ok()
            .map(Arc::new)
    });
    let held = Held::default();
    let batch = batch_size(options);
    let window = handoff_window(options);
    let min_window = (options.concurrency * 2).min(window);
    let flow = Arc::new(Flow::new(min_window));
    let (record_tx, record_rx) = mpsc::unbounded_channel::<Record>();
    let (ready_tx, ready_rx) = queue(window);
    let recorder = tokio::spawn(claims::record_outcomes(Recorder {
        db: db.clone(),
        outcomes: record_rx,
        flow: flow.clone(),
        max_window: window,
        min_window,
        gather: claims::gather_time(options.rate, window),
        held: held.clone(),
        stop: stop.clone(),
        journal: journal.clone(),
    }));
    let lease = Duration::from_secs(options.lease_secs);
    let heartbeat = tokio::spawn(claims::keep_leases(
        db.clone(),
        held.clone(),
        lease,
        stop.clone(),
    ));

    // The senders, one per connection, take the emails as they are claimed.
    let settings = Arc::new(settings);
    let pace = Arc::new(Pace::new(options.rate));
    let senders: Vec<_> = (0..options.concurrency)
        .map(|_| {
            tokio::spawn(senders::send_emails(Sender {
                jobs: ready_rx.clone(),
                user_id: user_id.clone(),
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
                journal: journal.clone(),
            }))
        })
        .collect();
    drop(ready_rx);

    let claim = Claim {
        campaign: campaign_id,
        max: batch,
        lease_secs: options.lease_secs,
        message_id_domain: &settings.message_id_domain(),
        resend_unknown: options.resend_unknown,
    };
    let handing = Handing {
        jobs: ready_tx,
        records: record_tx,
        flow,
        held: held.clone(),
        journal: journal.clone(),
    };
    hand_out_claims(&db, &claim, options, handing, &stop, &progress).await;

    // Every claimed email sent or released, every outcome recorded.
    for sender in senders {
        let _ = sender.await;
    }
    let _ = recorder.await;
    heartbeat.abort();
    ctrl_c.abort();
    progress.finish_and_clear();
    if let Some(journal) = &journal {
        journal.remove();
    }

    summary.count(&tally, started.elapsed(), stop.interrupted());
    // What is left unknown now (this run's own lost outcomes show once
    // their lease ends).
    if let Ok(left) = db.unknown(campaign_id).await {
        summary.unknown = left.count;
        summary.unknown_emails = left.emails;
    }
    let interrupted = summary.interrupted;
    let not_recorded = summary.not_recorded;
    let unknown_left = summary.unknown;
    summary::finish(summary, out)?;
    if let Some(e) = stop.take_error() {
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
    unknown_remain(unknown_left)
}

/// Exit 5 while emails with an unknown outcome remain, so that CI notices.
fn unknown_remain(count: u64) -> Result<()> {
    if count == 0 {
        return Ok(());
    }
    Err(Error::new(
        ErrorKind::UnknownOutcomes,
        t!("deliver-error-unknown-remain", count = count),
    )
    .with_hint(t!("deliver-hint-unknown-remain")))
}

/// Replays the journals of workers that died on this machine: their
/// outcomes recorded, the emails they never started given back, as the
/// worker each journal names; then the journal is removed.
async fn replay_journals(db: &Db, dir: &std::path::Path, out: &Output) -> Result<()> {
    for mut dead in journal::dead_journals(dir) {
        let replay = journal::parse(&dead.text());
        if replay.bad_lines > 0 {
            out.note(t!(
                "deliver-journal-bad-lines",
                count = replay.bad_lines,
                path = dead.path.display().to_string()
            ));
        }
        let Some(worker) = replay.worker.clone() else {
            dead.remove();
            continue;
        };
        let as_worker = Db {
            worker: worker.clone(),
            ..db.clone()
        };
        let released = replay
            .outcomes
            .iter()
            .filter(|(_, s, _)| *s == EmailStatus::Pending)
            .count();
        let mut recorded = 0;
        for chunk in replay.outcomes.chunks(1000) {
            let records: Vec<Record> = chunk
                .iter()
                .map(|(id, status, reply)| Record {
                    id: *id,
                    status: *status,
                    response: (!reply.is_empty()).then(|| reply.clone()),
                })
                .collect();
            as_worker.record(&records).await?;
            recorded += records.iter().filter(|r| r.status.is_settled()).count();
        }
        // What else it still holds was claimed and never started (its claim
        // answer may have been lost with it before the journal saw it).
        let released = released
            + if replay.started.len() <= 1000 {
                as_worker.release_worker(&replay.started).await?.max(0) as usize
            } else {
                0
            };
        out.note(t!(
            "deliver-journal-replayed",
            worker = worker.as_str(),
            recorded = recorded,
            released = released,
            started = replay.started.len()
        ));
        dead.remove();
    }
    Ok(())
}

/// Where the claimer puts what it claims.
struct Handing {
    /// The connections' queue.
    jobs: queue::QueueSender<Job>,
    /// Emails given back untried go to the recorder.
    records: mpsc::UnboundedSender<Record>,
    flow: Arc<Flow>,
    held: Held,
    journal: Option<Arc<Journal>>,
}

impl Handing {
    fn release(&self, id: Uuid, tally: &Tally) {
        tally.released.fetch_add(1, Ordering::Relaxed);
        let _ = self.records.send(Record::release(id));
    }
}

/// Claims as much as the hand-off window has room for, hands it to the
/// senders, claims again; until nothing is left (with `--follow`: until a
/// stop), or an error stops it.
async fn hand_out_claims(
    db: &Db,
    claim: &Claim<'_>,
    options: &Options,
    handing: Handing,
    stop: &Stop,
    progress: &indicatif::ProgressBar,
) {
    let tally = &db.tally;
    let mut templates: HashMap<Uuid, Arc<Template>> = HashMap::new();
    while !stop.is_set() {
        let Some(room) = handing.flow.room() else {
            handing.flow.wait(stop).await;
            continue;
        };
        let claimed: Vec<Claimed> = match db.claim(claim, room).await {
            Ok(rows) => rows,
            Err(e) => {
                stop.fail(e);
                return;
            }
        };
        if claimed.is_empty() {
            if !options.follow {
                return;
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
        let (to_send, suppressed): (Vec<Claimed>, Vec<Claimed>) = claimed
            .into_iter()
            .partition(|e| e.status == EmailStatus::Sending);
        // Suppressed: the database settled them without sending.
        tally
            .suppressed
            .fetch_add(suppressed.len() as u64, Ordering::Relaxed);
        progress.inc(suppressed.len() as u64);
        handing.flow.handed(to_send.len());
        let ids: Vec<Uuid> = to_send.iter().map(|e| e.id).collect();
        for id in &ids {
            claims::hold(&handing.held, *id);
        }
        if let Some(journal) = &handing.journal {
            journal.handing(&ids);
        }
        if let Err(e) = claims::load_templates(&db.client, &to_send, &mut templates).await {
            // Give the claims back untouched: nothing was sent.
            for id in ids {
                handing.release(id, tally);
            }
            stop.fail(e);
            return;
        }
        for email in to_send {
            let id = email.id;
            let template = templates
                .get(&email.campaign_id)
                .cloned()
                .unwrap_or_else(|| Arc::new(Template::new("", "")));
            if handing.jobs.send(Job::Send(email, template)).await.is_err() {
                // Every connection is gone: nothing more can be sent.
                handing.release(id, tally);
            }
        }
        progress.set_length(
            progress
                .length()
                .unwrap_or(0)
                .max(tally.claimed.load(Ordering::Relaxed)),
        );
    }
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
    if options.settle_unknown.is_some() && options.campaign.is_none() {
        return Err(Error::usage(t!("deliver-error-settle-campaign")));
    }
    Ok(())
}

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
    Err(Error::usage(message).with_hint(t!(
        "deliver-hint-verp",
        name = crate::settings::ENV_RETURN_PATH
    )))
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

/// Most emails handed to SMTP without a recorded outcome at any instant
/// (the window in use adapts below this): less when `--rate` sends slower
/// (a worker that dies on another machine than its journal leaves at most
/// this many with an unknown outcome).
fn handoff_window(options: &Options) -> usize {
    let full = (options.concurrency * HANDOFF_PER_CONNECTION).min(MAX_HANDOFF);
    if options.rate == 0.0 {
        return full;
    }
    ((options.rate / 2.0).ceil() as usize)
        .clamp(options.concurrency * 2, full.max(options.concurrency * 2))
}

/// The journal directory's name for the token's user: its id as a UUID,
/// never a path (the claim is read before any server has checked it).
fn journal_dir_name(user_id: &str) -> String {
    match Uuid::parse_str(user_id) {
        Ok(id) => id.hyphenated().to_string(),
        Err(_) => format!("user-{:016x}", {
            use std::hash::{Hash, Hasher};
            let mut h = std::collections::hash_map::DefaultHasher::new();
            user_id.hash(&mut h);
            h.finish()
        }),
    }
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

fn report_unknown(unknown: &claims::UnknownReport, resend: bool, out: &Output) {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn options(concurrency: usize, rate: f64) -> Options {
        Options {
            campaign: None,
            rate,
            concurrency,
            follow: false,
            dry_run: false,
            resend_unknown: false,
            settle_unknown: None,
            attempts: DEFAULT_ATTEMPTS,
            retry_delay_secs: DEFAULT_RETRY_DELAY_SECS,
            lease_secs: DEFAULT_LEASE.as_secs(),
            poll_secs: DEFAULT_POLL_SECS,
            verp: false,
        }
    }

    #[test]
    fn the_journal_directory_is_the_user_id_and_never_a_path() {
        let id = "1b4e28ba-2fa1-11d2-883f-0016d3cca427";
        assert_eq!(journal_dir_name(id), id);
        for hostile in ["../../etc", "/tmp/x", "", "a/b", ".."] {
            let name = journal_dir_name(hostile);
            assert!(
                name.starts_with("user-") && !name.contains('/') && !name.contains(".."),
                "{hostile}: {name}"
            );
        }
    }

    #[test]
    fn the_hand_off_window_fits_one_call_and_holds_two_per_connection() {
        for concurrency in [1, 4, 8, 15, 16, 64] {
            for rate in [0.0, 1.0, 20.0, 1000.0, 1e6] {
                let w = handoff_window(&options(concurrency, rate));
                assert!(
                    w <= MAX_HANDOFF,
                    "{concurrency} connections, rate {rate}: {w}"
                );
                assert!(
                    w >= concurrency * 2,
                    "{concurrency} connections, rate {rate}: {w}"
                );
            }
        }
        assert_eq!(handoff_window(&options(4, 0.0)), 4 * HANDOFF_PER_CONNECTION);
    }

    #[test]
    fn the_recorder_gathers_briefly_at_the_wire_s_speed_and_longer_under_a_rate() {
        use claims::{gather_time, GATHER_MAX, GATHER_MIN};
        let at = |rate: f64| gather_time(rate, handoff_window(&options(8, rate)));
        assert_eq!(at(0.0), GATHER_MIN);
        // A quarter of the window at 20/s would take 125 ms: the most.
        assert_eq!(at(20.0), GATHER_MAX);
        assert_eq!(at(400.0), GATHER_MAX);
        // 500 outcomes at 20 000/s come in 25 ms.
        assert_eq!(at(20_000.0), Duration::from_millis(25));
        assert_eq!(at(1e6), GATHER_MIN);
        assert_eq!(gather_time(f64::NAN, 100), GATHER_MIN);
    }
}
