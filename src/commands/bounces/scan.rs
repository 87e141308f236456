//! `mailsync bounces scan PATH…`: reads .eml files, Maildirs, mbox files and
//! directories of them with the bounce parser, without a mailbox or a
//! database (for an exported mailbox, and for support). A line per message
//! (its origin, what kind of report it is, each recipient with its action,
//! status and diagnostic), or with `--json` one document
//! `{"messages": [...], "counts": {...}}`.
//! Server side: none. Tests: `tests/it/bounces_scan.rs`; the parser's own
//! in `src/bounces/tests.rs`.

use std::path::PathBuf;

use serde::Serialize;

use crate::bounces::{self, source, Action, Kind, Report};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::t;

#[derive(Debug, Clone)]
pub struct Options {
    /// .eml files, Maildirs, mbox files or directories, as given.
    pub paths: Vec<PathBuf>,
}

/// One message in `--json`.
#[derive(Debug, Serialize)]
struct ScannedMessage {
    source: String,
    kind: Kind,
    format: bounces::Format,
    email_id: Option<uuid::Uuid>,
    original_message_id: Option<String>,
    recipients: Vec<ScannedRecipient>,
    problem: Option<String>,
}

#[derive(Debug, Serialize)]
struct ScannedRecipient {
    address: String,
    action: Action,
    status: Option<String>,
    diagnostic: Option<String>,
}

#[derive(Debug, Default, Serialize)]
struct Counts {
    messages: u64,
    delivery_status: u64,
    complaint: u64,
    not_a_report: u64,
    recipients: u64,
    failed: u64,
    delayed: u64,
    delivered: u64,
    complained: u64,
    with_problem: u64,
}

#[derive(Debug, Serialize)]
struct Scan {
    messages: Vec<ScannedMessage>,
    counts: Counts,
}

pub fn run(options: &Options, out: &Output) -> Result<()> {
    let mut scan = Scan {
        messages: Vec::new(),
        counts: Counts::default(),
    };
    for path in &options.paths {
        source::read(path, &mut |message| {
            let report = bounces::parse_prefix(&message.raw, message.size);
            let scanned = scanned(message.origin, &report);
            count(&mut scan.counts, &scanned);
            if out.json {
                scan.messages.push(scanned);
            } else {
                print_message(out, &scanned);
            }
            Ok(())
        })
        .map_err(|e| {
            Error::data(t!(
                "bounces-scan-error-read",
                path = e.path.display().to_string(),
                reason = e.error.to_string()
            ))
            .with_hint(t!("bounces-scan-hint-paths"))
        })?;
    }
    if out.json {
        return out.json(&scan);
    }
    let c = &scan.counts;
    out.print(t!(
        "bounces-scan-summary",
        messages = c.messages,
        reports = c.delivery_status,
        complaints = c.complaint,
        others = c.not_a_report
    ));
    Ok(())
}

fn scanned(source: String, report: &Report) -> ScannedMessage {
    ScannedMessage {
        source,
        kind: report.kind,
        format: report.format,
        email_id: report.email_id(),
        original_message_id: report.original_message_id.clone(),
        recipients: report
            .recipients
            .iter()
            .map(|r| ScannedRecipient {
                address: r.address.clone(),
                action: r.action,
                status: r.status.clone(),
                diagnostic: r.diagnostic.clone(),
            })
            .collect(),
        problem: report.problem.clone(),
    }
}

fn count(counts: &mut Counts, message: &ScannedMessage) {
    counts.messages += 1;
    match message.kind {
        Kind::DeliveryStatus => counts.delivery_status += 1,
        Kind::Complaint => counts.complaint += 1,
        Kind::NotAReport => counts.not_a_report += 1,
    }
    counts.with_problem += u64::from(message.problem.is_some());
    for recipient in &message.recipients {
        counts.recipients += 1;
        match recipient.action {
            Action::Failed => counts.failed += 1,
            Action::Delayed => counts.delayed += 1,
            Action::Delivered => counts.delivered += 1,
            Action::Complained => counts.complained += 1,
            Action::Relayed | Action::Expanded => {}
        }
    }
}

fn print_message(out: &Output, message: &ScannedMessage) {
    let kind = match message.kind {
        Kind::DeliveryStatus => t!("bounces-kind-delivery-status"),
        Kind::Complaint => t!("bounces-kind-complaint"),
        Kind::NotAReport => t!("bounces-kind-not-a-report"),
    };
    out.print(t!(
        "bounces-scan-message",
        source = message.source.clone(),
        kind = kind,
        format = message.format.as_str()
    ));
    for recipient in &message.recipients {
        let action = match recipient.action {
            Action::Failed => t!("bounces-action-failed"),
            Action::Delayed => t!("bounces-action-delayed"),
            Action::Delivered => t!("bounces-action-delivered"),
            Action::Relayed => t!("bounces-action-relayed"),
            Action::Expanded => t!("bounces-action-expanded"),
            Action::Complained => t!("bounces-action-complained"),
        };
        let address = recipient.address.clone();
        let status = recipient.status.clone().unwrap_or_else(|| "-".to_string());
        out.print(match recipient.diagnostic.clone() {
            Some(diagnostic) => t!(
                "bounces-scan-recipient",
                address = address,
                action = action,
                status = status,
                diagnostic = diagnostic
            ),
            None => t!(
                "bounces-scan-recipient-bare",
                address = address,
                action = action,
                status = status
            ),
        });
    }
    if let Some(problem) = &message.problem {
        out.print(t!("bounces-scan-problem", problem = problem.clone()));
    }
}
