//! The `message/delivery-status` part of an RFC 3464 report: one block of
//! per-message fields, then one block per recipient. Also the field-block
//! reader that the ARF `message/feedback-report` part shares.

use super::text::{self, untyped};
use super::{Action, RecipientReport, Report};

/// At most this many recipient blocks are read from one report.
pub const MAX_RECIPIENTS: usize = 1000;

/// `Name: value` fields in blocks separated by blank lines; continuation
/// lines are unfolded. Names are lower-cased.
pub type Block = Vec<(String, String)>;

pub fn blocks(body: &str) -> Vec<Block> {
    let mut blocks: Vec<Block> = Vec::new();
    let mut current: Block = Vec::new();
    for line in body.lines() {
        let line = line.trim_end_matches('\r');
        if line.trim().is_empty() {
            if !current.is_empty() {
                blocks.push(std::mem::take(&mut current));
                if blocks.len() > MAX_RECIPIENTS {
                    break;
                }
            }
            continue;
        }
        if line.starts_with([' ', '\t']) {
            if let Some((_, value)) = current.last_mut() {
                if value.len() < 4096 {
                    value.push(' ');
                    value.push_str(line.trim());
                }
            }
            continue;
        }
        if let Some((name, value)) = line.split_once(':') {
            current.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    if !current.is_empty() {
        blocks.push(current);
    }
    blocks
}

pub fn field<'a>(block: &'a Block, name: &str) -> Option<&'a str> {
    block
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.is_empty())
}

fn action(value: &str) -> Option<Action> {
    // `failed (bad destination mailbox)`: the comment is not part of it.
    let word = value.split([' ', '(', ';']).next()?.to_ascii_lowercase();
    Some(match word.as_str() {
        "failed" => Action::Failed,
        "delayed" => Action::Delayed,
        "delivered" => Action::Delivered,
        "relayed" => Action::Relayed,
        "expanded" => Action::Expanded,
        _ => return None,
    })
}

/// Reads the delivery-status part into `report`; returns why a block was
/// skipped, when one was.
pub fn read(body: &str, report: &mut Report) -> Option<String> {
    let mut blocks = blocks(body).into_iter();
    let mut problem = None;
    if let Some(per_message) = blocks.next() {
        report.reporting_mta =
            field(&per_message, "reporting-mta").map(|v| text::one_line(untyped(v), 255));
        report.envelope_id =
            field(&per_message, "original-envelope-id").map(|v| text::one_line(v, 255));
        if let Some(date) = field(&per_message, "arrival-date") {
            report.date = text::date(date);
        }
        // Some writers put the first recipient in the per-message block.
        if field(&per_message, "final-recipient").is_some() {
            read_recipient(&per_message, report, &mut problem);
        }
    }
    for block in blocks {
        read_recipient(&block, report, &mut problem);
    }
    problem
}

fn read_recipient(block: &Block, report: &mut Report, problem: &mut Option<String>) {
    if report.recipients.len() >= MAX_RECIPIENTS {
        *problem = Some(format!(
            "more than {MAX_RECIPIENTS} recipients; the rest were not read"
        ));
        return;
    }
    let final_recipient = field(block, "final-recipient").map(untyped);
    let original = field(block, "original-recipient").map(untyped);
    let Some(address) = final_recipient.or(original).and_then(text::address) else {
        *problem = Some("a recipient block without a readable Final-Recipient".to_string());
        return;
    };
    let Some(action) = field(block, "action").and_then(action) else {
        *problem = Some(format!("no readable Action for {address}"));
        return;
    };
    let diagnostic = field(block, "diagnostic-code").map(untyped);
    let status = field(block, "status")
        .and_then(text::valid_status)
        .or_else(|| diagnostic.and_then(text::status_code));
    report.recipients.push(RecipientReport {
        address,
        original_recipient: original.and_then(text::address),
        action,
        status,
        diagnostic: diagnostic.and_then(text::diagnostic),
    });
}
