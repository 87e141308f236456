//! The `message/feedback-report` part of a complaint (ARF, RFC 5965): one
//! block of fields (`Feedback-Type`, `Original-Rcpt-To`, `Arrival-Date`,
//! `Reporting-MTA`, ...).

use super::dsn::{blocks, field};
use super::text::{self, untyped};
use super::{Action, RecipientReport, Report};

/// Reads the feedback-report part into `report`.
pub fn read(body: &str, report: &mut Report) {
    let fields: Vec<(String, String)> = blocks(body).into_iter().flatten().collect();
    report.feedback_type =
        field(&fields, "feedback-type").map(|v| text::one_line(v, 64).to_ascii_lowercase());
    report.reporting_mta = field(&fields, "reporting-mta").map(|v| text::one_line(untyped(v), 255));
    if let Some(date) = field(&fields, "arrival-date").or_else(|| field(&fields, "received-date")) {
        report.date = text::date(date);
    }
    if let Some(envid) = field(&fields, "original-envelope-id") {
        report.envelope_id = Some(text::one_line(envid, 255));
    }
    for (name, value) in &fields {
        if name != "original-rcpt-to" {
            continue;
        }
        if let Some(address) = text::address(value) {
            if !report.recipients.iter().any(|r| r.address == address) {
                report.recipients.push(RecipientReport {
                    address,
                    original_recipient: None,
                    action: Action::Complained,
                    status: None,
                    diagnostic: None,
                });
            }
        }
    }
}
