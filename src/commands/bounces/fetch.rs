//! `mailsync bounces fetch`: reads the bounce mailbox over IMAP
//! (`MAILSYNC_BOUNCES_URL`), parses each message, and records its reports
//! through the REST API as the signed-in user.
//!
//! The steps, as a user would tell them: open the mailbox; list the messages
//! not yet recorded; read them a few at a time (at most
//! [`crate::bounces::MAX_INPUT`] bytes of each, never marking them read);
//! parse each one; record the reports of the batch in one call of the SQL
//! function `record_delivery_reports` (`sql/`), which matches each report to
//! one of the user's emails by its id or Message-ID and applies it
//! (delivered, bounced, suppressions); mark the messages whose reports are
//! all recorded; say one line per message; with `--follow`, wait for new
//! messages (IDLE, or every `--interval` seconds) until Ctrl-C.
//!
//! Once only: each report has a key (the message's digest, the action and
//! the recipient) that the database stores once per user, so a re-run, a
//! second worker or a crash between recording and marking never counts a
//! report twice. A message that is not a report, or whose report matches
//! none of this user's emails, is left as it was (not marked, not moved,
//! not read): it may be another user's. The mailbox itself is
//! `crate::mailbox`; the parser is `crate::bounces`.
//! Tests: `tests/it/bounces_fetch.rs`.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::watch;
use uuid::Uuid;

use crate::bounces::{self, Action, Kind, Report};
use crate::error::{Error, ErrorKind, Result};
use crate::mailbox::{Fetched, Reader, Timeouts};
use crate::output::Output;
use crate::settings::{BounceMailbox, Config};
use crate::supabase::rest::RestClient;
use crate::t;

/// Seconds between looks at the mailbox with `--follow` when the server
/// offers no IDLE.
pub const DEFAULT_INTERVAL: f64 = 30.0;
/// Messages read per FETCH: what one batch may hold in memory is this many
/// times [`bounces::MAX_INPUT`].
const BATCH: usize = 10;
/// Reports per call of `record_delivery_reports` (its limit).
const MAX_REPORTS_PER_CALL: usize = 1000;
/// Longest wait in IDLE before looking again anyway (servers and NAT boxes
/// drop connections idle for longer).
const IDLE_WAIT: Duration = Duration::from_secs(300);

/// What the user asked for.
#[derive(Debug, Clone)]
pub struct Options {
    /// Parse and show; record and mark nothing.
    pub dry_run: bool,
    /// Keep reading new messages until Ctrl-C.
    pub follow: bool,
    /// Seconds between looks with `--follow` when the server offers no IDLE.
    pub interval_secs: f64,
}

/// The `--json` document.
#[derive(Debug, Default, Serialize)]
pub struct FetchSummary {
    pub mailbox: String,
    pub dry_run: bool,
    /// The server keeps the `$MailsyncRecorded` keyword.
    pub keywords: bool,
    /// Messages read.
    pub messages: u64,
    /// Recipient lines of reports found in them.
    pub reports: u64,
    pub recorded: u64,
    pub duplicates: u64,
    pub unmatched: u64,
    pub invalid: u64,
    pub not_reports: u64,
    /// Messages larger than what is read of each.
    pub too_large: u64,
    /// Reports from which no recipient could be read.
    pub errors: u64,
    /// Messages marked recorded in the mailbox.
    pub marked: u64,
    pub interrupted: bool,
    pub elapsed_secs: f64,
}

/// One element of `record_delivery_reports`'s argument.
#[derive(Debug, Clone, Serialize)]
struct ReportRow {
    key: String,
    email_id: Option<Uuid>,
    message_id: Option<String>,
    kind: &'static str,
    status: Option<String>,
    diagnostic: Option<String>,
    reporting_mta: Option<String>,
    arrived_at: String,
}

/// One element of `record_delivery_reports`'s answer (one JSON array, which
/// no row cap cuts).
#[derive(Debug, Deserialize)]
struct Recorded {
    report_key: String,
    outcome: String,
}

/// A message read and parsed, with the rows it yields.
struct Parsed {
    message: Fetched,
    report: Report,
    rows: Vec<ReportRow>,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    if !(options.interval_secs.is_finite() && options.interval_secs >= 1.0) {
        return Err(Error::usage(t!("fetch-error-interval")));
    }
    let mailbox = config.bounce_mailbox()?.value;
    if !options.dry_run {
        // Signed in? Said before the mailbox is opened.
        crate::supabase::user::access_token(config, out).await?;
    }
    let started = Instant::now();
    let mut summary = FetchSummary {
        mailbox: mailbox.masked(),
        dry_run: options.dry_run,
        ..FetchSummary::default()
    };
    let (stop_tx, stop_rx) = watch::channel(false);
    let ctrl_c = tokio::spawn(watch_ctrl_c(stop_tx));
    let result = fetch_all(options, &mailbox, config, &mut summary, stop_rx, out).await;
    ctrl_c.abort();
    summary.elapsed_secs = (started.elapsed().as_secs_f64() * 1000.0).round() / 1000.0;
    result?;
    finish(&summary, out)?;
    // Ctrl-C is exit 130 with `--follow` too: one rule for every command.
    if summary.interrupted {
        return Err(Error::new(
            ErrorKind::Interrupted,
            t!("fetch-error-interrupted"),
        ));
    }
    Ok(())
}

/// Reads the mailbox until nothing is left (or, with `--follow`, until
/// Ctrl-C), reconnecting after a lost connection when following.
async fn fetch_all(
    options: &Options,
    mailbox: &BounceMailbox,
    config: &Config,
    summary: &mut FetchSummary,
    mut stop: watch::Receiver<bool>,
    out: &Output,
) -> Result<()> {
    // Messages looked at in this run and left unmarked (not reports, other
    // users' reports): not read again while UIDVALIDITY stays.
    let mut left: HashSet<u32> = HashSet::new();
    let mut validity: Option<u32> = None;
    let interval = Duration::from_secs_f64(options.interval_secs);
    loop {
        let mut reader = match Reader::open(mailbox, Timeouts::default()).await {
            Ok(reader) => reader,
            Err(e) if options.follow && e.kind() == ErrorKind::Unreachable => {
                out.note(t!("fetch-retrying", reason = e.to_string()));
                if wait_or_stop(interval, &mut stop).await {
                    summary.interrupted = true;
                    return Ok(());
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        summary.keywords = reader.keywords;
        if !reader.keywords {
            out.note(t!("fetch-no-keywords"));
        }
        if reader.uid_validity != validity {
            left.clear();
            validity = reader.uid_validity;
        }
        let outcome = follow_session(
            options,
            &mut reader,
            config,
            summary,
            &mut left,
            &mut stop,
            out,
        )
        .await;
        match outcome {
            Ok(()) => {
                reader.close().await;
                return Ok(());
            }
            Err(e) if options.follow && e.kind() == ErrorKind::Unreachable => {
                out.note(t!("fetch-retrying", reason = e.to_string()));
                if wait_or_stop(interval, &mut stop).await {
                    summary.interrupted = true;
                    return Ok(());
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// One connection's work: a pass over the unrecorded messages, then (with
/// `--follow`) a wait for news and another pass, until Ctrl-C. Each pass
/// takes the user's token afresh, so a saved session is refreshed on a
/// long `--follow`.
async fn follow_session(
    options: &Options,
    reader: &mut Reader,
    config: &Config,
    summary: &mut FetchSummary,
    left: &mut HashSet<u32>,
    stop: &mut watch::Receiver<bool>,
    out: &Output,
) -> Result<()> {
    loop {
        let client = if options.dry_run {
            None
        } else {
            Some(crate::supabase::user::user_client(config, out).await?)
        };
        let uids: Vec<u32> = reader
            .unrecorded()
            .await?
            .into_iter()
            .filter(|uid| !left.contains(uid))
            .collect();
        let bar = progress_bar(out, uids.len() as u64);
        for batch in uids.chunks(BATCH) {
            if *stop.borrow() {
                summary.interrupted = true;
                bar.finish_and_clear();
                return Ok(());
            }
            let messages = reader.fetch(batch, bounces::MAX_INPUT).await?;
            let parsed: Vec<Parsed> = messages.into_iter().map(parse).collect();
            let outcomes = match &client {
                Some(client) => record(client, &parsed).await?,
                None => HashMap::new(),
            };
            let mut done = Vec::new();
            for message in &parsed {
                let all_recorded = tally(message, &outcomes, options.dry_run, summary);
                bar.suspend(|| say(message, &outcomes, options.dry_run, out));
                if all_recorded && !options.dry_run {
                    done.push(message.message.uid);
                } else {
                    left.insert(message.message.uid);
                }
            }
            reader.mark_recorded(&done).await?;
            if reader.keywords {
                summary.marked += done.len() as u64;
            }
            bar.inc(batch.len() as u64);
        }
        bar.finish_and_clear();
        if !options.follow {
            return Ok(());
        }
        let wait = if reader.idle {
            IDLE_WAIT
        } else {
            Duration::from_secs_f64(options.interval_secs)
        };
        let mut stop_wait = stop.clone();
        let stopped = reader
            .wait_for_news(wait, async move {
                let _ = stop_wait.wait_for(|s| *s).await;
            })
            .await?;
        if stopped {
            summary.interrupted = true;
            return Ok(());
        }
    }
}

/// Parses one message and turns its recipients into report rows.
fn parse(message: Fetched) -> Parsed {
    let report = bounces::parse(&message.raw);
    let mut rows = Vec::new();
    if report.kind != Kind::NotAReport {
        let digest: String = Sha256::digest(&message.raw)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let arrived_at = report
            .date
            .as_deref()
            .filter(|d| chrono::DateTime::parse_from_rfc3339(d).is_ok())
            .map(str::to_string)
            .or_else(|| message.received_at.clone())
            .unwrap_or_else(|| chrono::Utc::now().to_rfc3339());
        let email_id = report.email_id();
        let message_id = report
            .original_message_id
            .as_deref()
            .map(|id| format!("<{id}>"));
        for recipient in &report.recipients {
            rows.push(ReportRow {
                key: report.report_key(&digest, recipient),
                email_id,
                message_id: message_id.clone(),
                kind: kind_of(recipient.action),
                status: status_of(recipient.action, recipient.status.as_deref()),
                diagnostic: recipient.diagnostic.clone(),
                reporting_mta: report.reporting_mta.clone(),
                arrived_at: arrived_at.clone(),
            });
        }
    }
    Parsed {
        message,
        report,
        rows,
    }
}

/// The status recorded: the report's RFC 3463 code; for a failure that
/// gives none (free-text bounces), `5.0.0`, a permanent failure of unknown
/// cause, as RFC 3464's `failed` action means.
fn status_of(action: Action, status: Option<&str>) -> Option<String> {
    match (action, status) {
        (_, Some(code)) => Some(code.to_string()),
        (Action::Failed, None) => Some("5.0.0".to_string()),
        (_, None) => None,
    }
}

/// The SQL function's name for an action.
fn kind_of(action: Action) -> &'static str {
    match action {
        Action::Complained => "complaint",
        other => other.as_str(),
    }
}

/// Records the rows of a batch, at most [`MAX_REPORTS_PER_CALL`] per call;
/// returns each key's outcome. Safe to repeat: a key already recorded comes
/// back `duplicate` and changes nothing.
async fn record(client: &RestClient, parsed: &[Parsed]) -> Result<HashMap<String, String>> {
    let rows: Vec<&ReportRow> = parsed.iter().flat_map(|p| &p.rows).collect();
    let mut outcomes = HashMap::new();
    for chunk in rows.chunks(MAX_REPORTS_PER_CALL) {
        let what = t!("fetch-what-record");
        let answer: Vec<Recorded> = client
            .execute_idempotent(
                client.rpc("record_delivery_reports", &json!({ "reports": chunk })),
                None,
                &what,
            )
            .await?
            .json(&what)?;
        for row in answer {
            outcomes.insert(row.report_key, row.outcome);
        }
    }
    Ok(outcomes)
}

/// Adds a message to the counts; true when all its reports are recorded
/// (so it can be marked).
fn tally(
    parsed: &Parsed,
    outcomes: &HashMap<String, String>,
    dry_run: bool,
    summary: &mut FetchSummary,
) -> bool {
    summary.messages += 1;
    if parsed.message.truncated {
        summary.too_large += 1;
    }
    if parsed.report.kind == Kind::NotAReport {
        summary.not_reports += 1;
        return false;
    }
    if parsed.rows.is_empty() {
        summary.errors += 1;
        return false;
    }
    summary.reports += parsed.rows.len() as u64;
    if dry_run {
        return false;
    }
    let mut all_recorded = true;
    for row in &parsed.rows {
        match outcomes.get(&row.key).map(String::as_str) {
            Some("recorded") => summary.recorded += 1,
            Some("duplicate") => summary.duplicates += 1,
            Some("invalid") => {
                summary.invalid += 1;
                all_recorded = false;
            }
            _ => {
                summary.unmatched += 1;
                all_recorded = false;
            }
        }
    }
    all_recorded
}

/// The message's line (and, with `-v`, its detail).
fn say(parsed: &Parsed, outcomes: &HashMap<String, String>, dry_run: bool, out: &Output) {
    let message = &parsed.message;
    let report = &parsed.report;
    let uid = message.uid.to_string();
    let size = if message.truncated {
        let note = t!(
            "fetch-too-large",
            size = crate::i18n::current().decimal(message.size as f64 / 1_048_576.0, 1),
            read = (bounces::MAX_INPUT / 1_048_576) as u64
        );
        format!("{note} ")
    } else {
        String::new()
    };
    if report.kind == Kind::NotAReport {
        out.print(t!("fetch-line-not-report", uid = uid, size = size));
    } else if parsed.rows.is_empty() {
        out.print(t!(
            "fetch-line-no-recipient",
            uid = uid,
            size = size,
            problem = report.problem.clone().unwrap_or_default()
        ));
    } else {
        let recipients: Vec<String> = report
            .recipients
            .iter()
            .zip(&parsed.rows)
            .map(|(recipient, row)| {
                let outcome = if dry_run {
                    t!("fetch-outcome-dry-run")
                } else {
                    match outcomes.get(&row.key).map(String::as_str) {
                        Some("recorded") => t!("fetch-outcome-recorded"),
                        Some("duplicate") => t!("fetch-outcome-duplicate"),
                        Some("invalid") => t!("fetch-outcome-invalid"),
                        _ => t!("fetch-outcome-unmatched"),
                    }
                };
                t!(
                    "fetch-recipient",
                    address = recipient.address.as_str(),
                    action = recipient.action.as_str(),
                    status = recipient
                        .status
                        .as_deref()
                        .map(|s| format!(" {s}"))
                        .unwrap_or_default(),
                    outcome = outcome
                )
            })
            .collect();
        let kind = match report.kind {
            Kind::Complaint => t!("fetch-kind-complaint"),
            _ => t!("fetch-kind-delivery"),
        };
        out.print(t!(
            "fetch-line-report",
            uid = uid,
            size = size,
            kind = kind,
            recipients = recipients.join("; ")
        ));
    }
    // The -v detail is English, like the rest of the trace.
    out.debug(format!(
        "  format {}, email id {}, original Message-ID {}, reporting MTA {}, date {}{}",
        report.format.as_str(),
        report
            .email_id()
            .map(|u| u.to_string())
            .unwrap_or_else(|| "-".into()),
        report.original_message_id.as_deref().unwrap_or("-"),
        report.reporting_mta.as_deref().unwrap_or("-"),
        report.date.as_deref().unwrap_or("-"),
        report
            .problem
            .as_deref()
            .map(|p| format!(", problem: {p}"))
            .unwrap_or_default()
    ));
    for row in &parsed.rows {
        out.debug(format!(
            "  key {} kind {} status {} diagnostic {}",
            row.key,
            row.kind,
            row.status.as_deref().unwrap_or("-"),
            row.diagnostic.as_deref().unwrap_or("-")
        ));
    }
}

fn finish(summary: &FetchSummary, out: &Output) -> Result<()> {
    if out.json {
        return out.json(summary);
    }
    if summary.dry_run {
        out.print(t!(
            "fetch-dry-run-done",
            mailbox = summary.mailbox.as_str(),
            messages = summary.messages,
            reports = summary.reports,
            not_reports = summary.not_reports
        ));
    } else {
        out.print(t!(
            "fetch-done",
            mailbox = summary.mailbox.as_str(),
            messages = summary.messages,
            recorded = summary.recorded,
            duplicates = summary.duplicates,
            unmatched = summary.unmatched + summary.invalid + summary.errors,
            not_reports = summary.not_reports
        ));
    }
    Ok(())
}

fn progress_bar(out: &Output, total: u64) -> ProgressBar {
    if total < 2 * BATCH as u64 {
        return ProgressBar::hidden();
    }
    out.progress_bar(
        total,
        &format!(
            "{} [{{bar:30}}] {{count}}/{{total}} · {{rate}}",
            t!("fetch-progress"),
        ),
    )
}

/// Waits `wait`, or less when Ctrl-C comes; true when it came.
async fn wait_or_stop(wait: Duration, stop: &mut watch::Receiver<bool>) -> bool {
    let stopped = tokio::select! {
        _ = tokio::time::sleep(wait) => false,
        found = stop.wait_for(|s| *s) => found.is_ok(),
    };
    stopped || *stop.borrow()
}

/// Ctrl-C (or SIGTERM) asks the run to stop once the messages in hand are
/// recorded; a second one exits at once (`crate::interrupt`).
async fn watch_ctrl_c(stop: watch::Sender<bool>) {
    let mut signal = crate::interrupt::CleanStop::hold(Some(t!("fetch-stopping")));
    signal.wait().await;
    let _ = stop.send(true);
    // Held until the run ends: the second signal is the one that exits.
    std::future::pending::<()>().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fetched(raw: &[u8]) -> Fetched {
        Fetched {
            uid: 7,
            size: raw.len() as u64,
            raw: raw.to_vec(),
            truncated: false,
            received_at: Some("2026-12-05T10:00:00+00:00".into()),
        }
    }

    const DSN: &str = "From: MAILER-DAEMON@relay.example\r\n\
        To: bounces@acme.example\r\n\
        Date: Sat, 05 Dec 2026 10:00:00 +0000\r\n\
        MIME-Version: 1.0\r\n\
        Content-Type: multipart/report; report-type=delivery-status; boundary=\"b\"\r\n\
        \r\n\
        --b\r\n\
        Content-Type: text/plain\r\n\
        \r\n\
        Your message could not be delivered.\r\n\
        --b\r\n\
        Content-Type: message/delivery-status\r\n\
        \r\n\
        Reporting-MTA: dns; relay.example\r\n\
        Original-Envelope-Id: 0b7e3d9a-2c4f-4a61-8e5d-3f2a1b0c9d8e\r\n\
        Arrival-Date: Sat, 05 Dec 2026 09:59:00 +0000\r\n\
        \r\n\
        Final-Recipient: rfc822; ana@example.net\r\n\
        Action: failed\r\n\
        Status: 5.1.1\r\n\
        \r\n\
        Final-Recipient: rfc822; ben@example.net\r\n\
        Action: delivered\r\n\
        Status: 2.0.0\r\n\
        \r\n\
        --b--\r\n";

    #[test]
    fn a_report_yields_one_row_per_recipient_with_stable_keys() {
        let parsed = parse(fetched(DSN.as_bytes()));
        assert_eq!(parsed.rows.len(), 2);
        let row = &parsed.rows[0];
        assert_eq!(row.kind, "failed");
        assert_eq!(row.status.as_deref(), Some("5.1.1"));
        assert_eq!(
            row.email_id.map(|u| u.to_string()).as_deref(),
            Some("0b7e3d9a-2c4f-4a61-8e5d-3f2a1b0c9d8e")
        );
        assert_eq!(row.reporting_mta.as_deref(), Some("relay.example"));
        assert!(chrono::DateTime::parse_from_rfc3339(&row.arrived_at).is_ok());
        assert_eq!(parsed.rows[1].kind, "delivered");
        assert_ne!(row.key, parsed.rows[1].key);
        // The same message read again gives the same keys.
        let again = parse(fetched(DSN.as_bytes()));
        assert_eq!(again.rows[0].key, row.key);
    }

    #[test]
    fn a_failure_without_a_code_is_recorded_as_permanent() {
        assert_eq!(status_of(Action::Failed, None).as_deref(), Some("5.0.0"));
        assert_eq!(
            status_of(Action::Failed, Some("4.4.7")).as_deref(),
            Some("4.4.7")
        );
        assert_eq!(status_of(Action::Delivered, None), None);
        assert_eq!(kind_of(Action::Complained), "complaint");
        assert_eq!(kind_of(Action::Delayed), "delayed");
    }

    #[test]
    fn a_message_is_marked_only_when_all_its_reports_are_recorded() {
        let parsed = parse(fetched(DSN.as_bytes()));
        let keys: Vec<String> = parsed.rows.iter().map(|r| r.key.clone()).collect();
        let mut summary = FetchSummary::default();
        let outcomes = HashMap::from([
            (keys[0].clone(), "recorded".to_string()),
            (keys[1].clone(), "duplicate".to_string()),
        ]);
        assert!(tally(&parsed, &outcomes, false, &mut summary));
        let outcomes = HashMap::from([
            (keys[0].clone(), "recorded".to_string()),
            (keys[1].clone(), "unmatched".to_string()),
        ]);
        assert!(!tally(&parsed, &outcomes, false, &mut summary));
        assert!(!tally(&parsed, &HashMap::new(), true, &mut summary));
        assert_eq!(summary.messages, 3);
        assert_eq!(summary.reports, 6);
        assert_eq!(summary.recorded, 2);
        assert_eq!(summary.duplicates, 1);
        assert_eq!(summary.unmatched, 1);

        let reply = parse(fetched(
            b"From: a@b.example\r\nSubject: Re: hi\r\n\r\nThanks!\r\n",
        ));
        assert!(reply.rows.is_empty());
        assert!(!tally(&reply, &HashMap::new(), false, &mut summary));
        assert_eq!(summary.not_reports, 1);
    }
}
