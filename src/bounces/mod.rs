//! Reports that come back after a send: delivery status notifications
//! (RFC 3464), complaints (ARF, RFC 5965) and the free-text bounces that
//! many mail systems still send. [`parse`] turns one raw message into a
//! [`Report`]; [`source`] reads messages from .eml files, Maildirs and mbox
//! files. This engine knows nothing of commands, REST or IMAP: `bounces
//! scan` and `bounces fetch` call it.
//!
//! How a report is matched to the email it is about: the email carries the
//! Message-ID `<EMAIL_UUID@domain>`, the DSN envelope id `ENVID=EMAIL_UUID`
//! and optionally a VERP return path `local+EMAIL_UUID@domain`;
//! [`Report::email_id`] tries them in that order.

mod arf;
mod dsn;
mod freetext;
mod parse;
pub mod source;

mod text;

use serde::Serialize;
use uuid::Uuid;

pub use parse::{parse, parse_prefix, MAX_INPUT, MAX_PARTS};

/// How the report was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    /// `multipart/report; report-type=delivery-status` (RFC 3464).
    Rfc3464,
    /// `multipart/report; report-type=feedback-report` (RFC 5965).
    Arf,
    /// Free text from Microsoft Exchange or Office 365.
    Exchange,
    /// Free text from Gmail.
    Gmail,
    /// Free text from qmail.
    Qmail,
    /// Free text from Exim.
    Exim,
    /// Free text from Postfix.
    Postfix,
    /// Free text from another mail system, with an RFC 3463 code in it.
    FreeText,
    /// An automatic reply (RFC 3834, out-of-office): not a report.
    AutoReply,
    /// An ordinary message.
    None,
}

/// What the report tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    DeliveryStatus,
    Complaint,
    NotAReport,
}

/// What happened to one recipient (RFC 3464 `Action`, or a complaint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Delivered,
    Failed,
    Delayed,
    Relayed,
    Expanded,
    Complained,
}

impl Action {
    pub fn as_str(self) -> &'static str {
        match self {
            Action::Delivered => "delivered",
            Action::Failed => "failed",
            Action::Delayed => "delayed",
            Action::Relayed => "relayed",
            Action::Expanded => "expanded",
            Action::Complained => "complained",
        }
    }
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::DeliveryStatus => "delivery_status",
            Kind::Complaint => "complaint",
            Kind::NotAReport => "not_a_report",
        }
    }
}

impl Format {
    pub fn as_str(self) -> &'static str {
        match self {
            Format::Rfc3464 => "rfc3464",
            Format::Arf => "arf",
            Format::Exchange => "exchange",
            Format::Gmail => "gmail",
            Format::Qmail => "qmail",
            Format::Exim => "exim",
            Format::Postfix => "postfix",
            Format::FreeText => "free_text",
            Format::AutoReply => "auto_reply",
            Format::None => "none",
        }
    }
}

/// One recipient of the original email, as the report describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RecipientReport {
    /// The final recipient, lower-cased.
    pub address: String,
    /// `Original-Recipient`, when the report gives it.
    pub original_recipient: Option<String>,
    pub action: Action,
    /// The RFC 3463 code (`5.1.1`).
    pub status: Option<String>,
    /// The remote server's words, on one line, control characters removed.
    pub diagnostic: Option<String>,
}

/// What one message says, whether or not it is a report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    pub format: Format,
    pub kind: Kind,
    /// The report's own Message-ID, without angle brackets.
    pub message_id: Option<String>,
    /// `Arrival-Date` (or `Received-Date`), else the report's `Date`, in
    /// RFC 3339 when it can be read, as written otherwise.
    pub date: Option<String>,
    pub reporting_mta: Option<String>,
    /// `Original-Envelope-Id`: the ENVID the email was sent with.
    pub envelope_id: Option<String>,
    /// The Message-ID of the email the report is about, without brackets.
    pub original_message_id: Option<String>,
    /// The `+token` of a VERP return path the report was addressed to.
    pub return_token: Option<String>,
    pub recipients: Vec<RecipientReport>,
    /// ARF `Feedback-Type` (`abuse`, `fraud`, ...).
    pub feedback_type: Option<String>,
    /// Why part of the message could not be read, when it could not.
    pub problem: Option<String>,
}

impl Report {
    pub(crate) fn empty() -> Report {
        Report {
            format: Format::None,
            kind: Kind::NotAReport,
            message_id: None,
            date: None,
            reporting_mta: None,
            envelope_id: None,
            original_message_id: None,
            return_token: None,
            recipients: Vec::new(),
            feedback_type: None,
            problem: None,
        }
    }

    /// The id of the email this report is about: the envelope id, the VERP
    /// token, then the original Message-ID's left part, each used only when
    /// it is a UUID (a report about mail mailsync did not send has none).
    pub fn email_id(&self) -> Option<Uuid> {
        let from_message_id = self
            .original_message_id
            .as_deref()
            .and_then(|id| id.split_once('@').map(|(left, _)| left));
        [
            self.envelope_id.as_deref(),
            self.return_token.as_deref(),
            from_message_id,
        ]
        .into_iter()
        .flatten()
        .find_map(|candidate| Uuid::parse_str(candidate.trim()).ok())
    }

    /// A key naming one recipient's line of one report: the same for the
    /// same message read twice (so storing it again changes nothing),
    /// different for each recipient and action, at most 200 characters.
    /// `raw_sha256` is the hex SHA-256 of the whole raw message.
    pub fn report_key(&self, raw_sha256: &str, recipient: &RecipientReport) -> String {
        use sha2::{Digest, Sha256};
        let digest: String = raw_sha256.chars().take(64).collect();
        let address = if recipient.address.len() <= 100 {
            recipient.address.clone()
        } else {
            let hash = Sha256::digest(recipient.address.as_bytes());
            let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
            format!("sha256:{hex}")
        };
        format!("{digest}:{}:{address}", recipient.action.as_str())
    }
}

#[cfg(test)]
mod tests;
