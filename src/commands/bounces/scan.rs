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
use crate::output::{self, Output};
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

pub fn run(options: &Options, out: &Output) -> Result<()> {
    // Every PATH is checked before the first line: a typo fails at once,
    // not after minutes of output.
    for path in &options.paths {
        std::fs::metadata(path).map_err(|e| read_error(path, &e))?;
    }
    // `--json` is written message by message (one document still), so a
    // mailbox of any size costs the memory of one message.
    let mut counts = Counts::default();
    if out.json {
        out.raw("{\"messages\":[")?;
    }
    let mut scanned_all = Ok(());
    let mut write_failed = None;
    for path in &options.paths {
        scanned_all = source::read(path, &mut |message| {
            let report = bounces::parse_prefix(&message.raw, message.size);
            let scanned = scanned(message.origin, &report);
            count(&mut counts, &scanned);
            if out.json {
                let separator = if counts.messages > 1 { "," } else { "" };
                let written = output::json_line(&scanned)
                    .and_then(|line| out.raw(&format!("{separator}{line}")));
                if let Err(error) = written {
                    // Not a reading error: kept aside, and the reading stops.
                    write_failed = Some(error);
                    return Err(source::SourceError {
                        path: path.clone(),
                        error: std::io::Error::other("output failed"),
                    });
                }
            } else {
                print_message(out, &scanned);
            }
            Ok(())
        })
        .map_err(|e| read_error(&e.path, &e.error));
        if let Some(error) = write_failed {
            return Err(error);
        }
        if scanned_all.is_err() {
            break;
        }
    }
    if out.json {
        out.raw(&format!("],\"counts\":{}}}\n", output::json_line(&counts)?))?;
        return scanned_all;
    }
    scanned_all?;
    out.print(t!(
        "bounces-scan-summary",
        messages = counts.messages,
        reports = counts.delivery_status,
        complaints = counts.complaint,
        others = counts.not_a_report
    ));
    Ok(())
}

fn read_error(path: &std::path::Path, error: &std::io::Error) -> Error {
    Error::data(t!(
        "bounces-scan-error-read",
        path = path.display().to_string(),
        reason = error.to_string()
    ))
    .with_hint(t!("bounces-scan-hint-paths"))
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
