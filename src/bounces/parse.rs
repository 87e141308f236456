//! One raw message → one [`Report`]. The MIME structure is read by
//! mail-parser; what it is (a DSN, a complaint, a free-text bounce, an
//! automatic reply, an ordinary message) is decided here, in that order.
//!
//! Bounded whatever the input: at most [`MAX_INPUT`] bytes are read (the
//! parts of a report that matter come first and are small), the input is
//! cut before its [`MAX_PARTS`]-th MIME boundary (which also bounds the
//! nesting depth), and the text searched for free-text bounces is capped.

use mail_parser::{Message, MessageParser, MimeHeaders, PartType};

use super::text;
use super::{arf, dsn, freetext, Format, Kind, Report};

/// The most bytes of one message that are read.
pub const MAX_INPUT: usize = 2 * 1024 * 1024;
/// The most MIME boundaries read in one message.
pub const MAX_PARTS: usize = 1000;
/// The most characters of text searched for a free-text bounce.
const MAX_TEXT: usize = 256 * 1024;

/// Reads one raw message. Never panics; what could not be read is said in
/// [`Report::problem`].
pub fn parse(raw: &[u8]) -> Report {
    parse_prefix(raw, raw.len() as u64)
}

/// Reads the first bytes of a message of `size` bytes whose rest was not
/// kept (a source keeps at most [`MAX_INPUT`] bytes of each message).
pub fn parse_prefix(raw: &[u8], size: u64) -> Report {
    let (input, cut) = bounded(raw, size);
    let read = std::panic::catch_unwind(|| read(input));
    let mut report = read.unwrap_or_else(|_| {
        let mut report = Report::empty();
        report.problem = Some("the MIME structure could not be read".to_string());
        report
    });
    if let Some(cut) = cut {
        report.problem = Some(match report.problem.take() {
            Some(problem) => format!("{cut}; {problem}"),
            None => cut,
        });
    }
    report
}

/// The part of `raw` that is read, and why it was cut when it was.
fn bounded(raw: &[u8], size: u64) -> (&[u8], Option<String>) {
    let input = &raw[..raw.len().min(MAX_INPUT)];
    let mut cut = None;
    if size > input.len() as u64 {
        cut = Some(format!(
            "the message is {size} bytes; only its first {} were read",
            input.len()
        ));
    }
    let mut input = input;
    let mut boundaries = 0;
    let mut at = 0;
    while let Some(p) = input[at..].iter().position(|b| *b == b'\n') {
        let line = at + p + 1;
        if input[line..].starts_with(b"--") {
            boundaries += 1;
            if boundaries == MAX_PARTS {
                input = &input[..line];
                cut = Some(format!(
                    "more than {MAX_PARTS} MIME parts; the rest was not read"
                ));
                break;
            }
        }
        at = line;
    }
    (input, cut)
}

fn read(input: &[u8]) -> Report {
    let mut report = Report::empty();
    let Some(message) = MessageParser::default().parse(input) else {
        report.problem = Some("no message headers".to_string());
        return report;
    };
    report.message_id = message.message_id().and_then(text::message_id);
    report.return_token = ["Delivered-To", "X-Original-To", "Envelope-To", "To"]
        .iter()
        .flat_map(|name| header_values(&message, name))
        .find_map(|value| {
            text::addresses(&value)
                .iter()
                .find_map(|a| text::verp_token(a))
        });

    let mut delivery_status = None;
    let mut feedback = None;
    let mut original: Option<OriginalHeaders> = None;
    let mut body = String::new();
    for part in &message.parts {
        let (ctype, subtype) = part
            .content_type()
            .map(|c| {
                (
                    c.ctype().to_ascii_lowercase(),
                    c.subtype().unwrap_or("").to_ascii_lowercase(),
                )
            })
            .unwrap_or_else(|| ("text".to_string(), "plain".to_string()));
        match (ctype.as_str(), subtype.as_str()) {
            ("message", "delivery-status" | "global-delivery-status") => {
                delivery_status.get_or_insert_with(|| lossy(part.contents()));
            }
            ("message", "feedback-report") => {
                feedback.get_or_insert_with(|| lossy(part.contents()));
            }
            ("text", "rfc822-headers") | ("message", "global-headers") if original.is_none() => {
                original = OriginalHeaders::read(part.contents());
            }
            ("message", "rfc822" | "global") if original.is_none() => {
                original = match part.message() {
                    Some(nested) => Some(OriginalHeaders::of(nested)),
                    None => OriginalHeaders::read(part.contents()),
                };
            }
            ("text", "plain") | ("text", "html") if body.len() < MAX_TEXT => match &part.body {
                PartType::Text(t) => push_bounded(&mut body, t),
                PartType::Html(h) => push_bounded(&mut body, &html_text(h)),
                _ => {}
            },
            _ => {}
        }
    }

    let subject = message.subject().unwrap_or("");
    let from = header_values(&message, "From").join(", ");
    let exclude: Vec<String> = ["From", "To", "Delivered-To", "X-Original-To", "Return-Path"]
        .iter()
        .flat_map(|name| header_values(&message, name))
        .flat_map(|value| text::addresses(&value))
        .collect();

    if let Some(status) = delivery_status {
        report.format = Format::Rfc3464;
        report.kind = Kind::DeliveryStatus;
        report.problem = dsn::read(&status, &mut report);
        if report.recipients.is_empty() && report.problem.is_none() {
            report.problem = Some("the delivery-status part names no recipient".to_string());
        }
        // Exim leaves Diagnostic-Code out when no remote server answered
        // ("Unrouteable address"); its text for a person still says why.
        if report.recipients.iter().any(|r| r.diagnostic.is_none()) {
            if let Some(found) = freetext::read(subject, &from, &body, &exclude) {
                for recipient in report
                    .recipients
                    .iter_mut()
                    .filter(|r| r.diagnostic.is_none())
                {
                    recipient.diagnostic = found
                        .recipients
                        .iter()
                        .find(|f| f.address == recipient.address)
                        .and_then(|f| f.diagnostic.clone());
                }
            }
        }
    } else if let Some(feedback) = feedback {
        report.format = Format::Arf;
        report.kind = Kind::Complaint;
        arf::read(&feedback, &mut report);
        if report.recipients.is_empty() {
            // Many complaint loops redact Original-Rcpt-To; the returned
            // message still says whom it was sent to.
            if let Some(to) = original.as_ref().and_then(|o| o.to.clone()) {
                report.recipients.push(super::RecipientReport {
                    address: to,
                    original_recipient: None,
                    action: super::Action::Complained,
                    status: None,
                    diagnostic: None,
                });
            } else {
                report.problem = Some("the complaint names no recipient".to_string());
            }
        }
    } else {
        if let Some(found) = freetext::read(subject, &from, &body, &exclude) {
            report.format = found.format;
            report.kind = Kind::DeliveryStatus;
            report.reporting_mta = found.reporting_mta;
            report.recipients = found.recipients;
            if report.recipients.is_empty() {
                report.problem = Some("no recipient address found in the text".to_string());
            }
        } else if is_auto_reply(&message, subject) {
            report.format = Format::AutoReply;
        }
    }

    if report.kind != Kind::NotAReport {
        report.original_message_id = original
            .and_then(|o| o.message_id)
            .or_else(|| freetext::quoted_message_id(&body));
    }
    if report.date.is_none() {
        report.date = message
            .date()
            .filter(|d| d.is_valid())
            .map(|d| d.to_rfc3339());
    }
    report
}

/// What is read from the returned copy of the original message.
struct OriginalHeaders {
    message_id: Option<String>,
    to: Option<String>,
}

impl OriginalHeaders {
    fn of(message: &Message<'_>) -> OriginalHeaders {
        OriginalHeaders {
            message_id: message.message_id().and_then(text::message_id),
            to: header_values(message, "To")
                .iter()
                .find_map(|v| text::address(v)),
        }
    }

    fn read(headers: &[u8]) -> Option<OriginalHeaders> {
        MessageParser::default()
            .parse_headers(headers)
            .map(|m| OriginalHeaders::of(&m))
    }
}

/// The raw values of a message's header `name`, unfolded.
fn header_values(message: &Message<'_>, name: &str) -> Vec<String> {
    // Header offsets count from the start of the whole buffer, also in a
    // nested message (whose `raw_message()` starts later).
    let raw: &[u8] = message.raw_message.as_ref();
    message
        .headers()
        .iter()
        .filter(|h| h.name().eq_ignore_ascii_case(name))
        .filter_map(|h| {
            let value = raw.get(h.offset_start() as usize..h.offset_end() as usize)?;
            Some(text::one_line(&String::from_utf8_lossy(value), 2000))
        })
        .collect()
}

/// RFC 3834 and the headers autoresponders use in its place.
fn is_auto_reply(message: &Message<'_>, subject: &str) -> bool {
    let auto_submitted = header_values(message, "Auto-Submitted")
        .iter()
        .any(|v| !v.trim().eq_ignore_ascii_case("no"));
    let marked = ["X-Autoreply", "X-Autorespond"]
        .iter()
        .any(|name| !header_values(message, name).is_empty());
    let precedence = header_values(message, "Precedence")
        .iter()
        .any(|v| v.trim().eq_ignore_ascii_case("auto_reply"));
    let subject = subject.to_lowercase();
    let worded = [
        "out of office",
        "automatic reply",
        "auto:",
        "autoreply",
        "réponse automatique",
        "absence",
    ]
    .iter()
    .any(|w| subject.starts_with(w));
    auto_submitted || marked || precedence || worded
}

fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(&bytes[..bytes.len().min(MAX_TEXT)]).into_owned()
}

fn push_bounded(body: &mut String, text: &str) {
    let room = MAX_TEXT.saturating_sub(body.len());
    let mut end = text.len().min(room);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    body.push_str(&text[..end]);
    body.push('\n');
}

/// The text of an HTML part, one line per block, tags dropped.
fn html_text(html: &str) -> String {
    let mut out = String::with_capacity(html.len().min(MAX_TEXT));
    let mut rest = html;
    while let Some(open) = rest.find('<') {
        out.push_str(&rest[..open]);
        let Some(close) = rest[open..].find('>') else {
            rest = "";
            break;
        };
        let tag = rest[open + 1..open + close].to_ascii_lowercase();
        if [
            "br", "/p", "p", "/div", "/tr", "/li", "/h1", "/h2", "/h3", "/td",
        ]
        .iter()
        .any(|t| {
            tag == *t || tag.starts_with(&format!("{t} ")) || tag.starts_with(&format!("{t}/"))
        }) {
            out.push('\n');
        }
        rest = &rest[open + close + 1..];
        if out.len() > MAX_TEXT {
            break;
        }
    }
    out.push_str(rest);
    out.replace("&nbsp;", " ")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&amp;", "&")
}
