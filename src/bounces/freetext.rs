//! Bounces written as prose for a person, without a delivery-status part:
//! qmail, Postfix and Exim without DSN, Gmail, Exchange and Office 365, and
//! any other mail system that writes an RFC 3463 code next to the address.
//! Each format has its own opening words and its own way of listing the
//! addresses; the code and the remote server's words are found in the
//! lines that follow each address.

use super::text;
use super::{Action, Format, RecipientReport};

/// What a free-text bounce says.
pub struct FreeText {
    pub format: Format,
    pub reporting_mta: Option<String>,
    pub recipients: Vec<RecipientReport>,
}

/// At most this many lines follow an address as its explanation.
const BLOCK_LINES: usize = 20;

/// Reads `body` (the text of a message whose subject and sender are given)
/// as a free-text bounce; `None` when it is not one. `exclude` lists the
/// addresses that are not recipients (the report's sender and addressee).
pub fn read(subject: &str, from: &str, body: &str, exclude: &[String]) -> Option<FreeText> {
    let lines: Vec<&str> = body.lines().map(|l| l.trim_end_matches('\r')).collect();
    let find = |needle: &str| lines.iter().position(|l| l.contains(needle));
    let subject_lower = subject.to_ascii_lowercase();

    let (format, start, delayed, mta) = if let Some(i) = find("This is the qmail-send program at") {
        let mta = after(lines[i], "program at ");
        (Format::Qmail, i, false, mta)
    } else if let Some(i) = find("This is the mail system at host") {
        let mta = after(lines[i], "at host ");
        let delayed = subject_lower.contains("delayed");
        (Format::Postfix, i, delayed, mta)
    } else if let Some(i) = find("This message was created automatically by mail delivery software")
    {
        let delayed = find("has not yet been delivered").is_some();
        (Format::Exim, i, delayed, None)
    } else if let Some(i) = find("Delivery to the following recipient")
        .or_else(|| find("Your message wasn't delivered to"))
        .or_else(|| find("Message not delivered"))
        .filter(|_| {
            body.contains("Google") || from.contains("googlemail.com") || from.contains("gmail.com")
        })
    {
        let delayed = lines[i].contains("delayed") || subject_lower.contains("delay");
        (Format::Gmail, i, delayed, None)
    } else if let Some(i) = find("Delivery has failed to these recipients or groups")
        .or_else(|| find("did not reach some or all of the intended recipients"))
        .or_else(|| find("Your message to").filter(|_| body.contains("couldn't be delivered")))
    {
        let mta = lines
            .iter()
            .find_map(|l| l.trim().strip_prefix("Generating server:").map(str::trim))
            .map(|s| text::one_line(s, 255));
        let delayed = subject_lower.contains("delay");
        (Format::Exchange, i, delayed, mta)
    } else if looks_like_bounce(&subject_lower, from) && text::status_code(body).is_some() {
        let lower = body.to_ascii_lowercase();
        let delayed = [
            "delayed",
            "will be retried",
            "not yet been delivered",
            "still trying",
        ]
        .iter()
        .any(|w| lower.contains(w) || subject_lower.contains(w));
        (Format::FreeText, 0, delayed, None)
    } else {
        return None;
    };

    let end = lines[start..]
        .iter()
        .position(|l| is_quote_start(l))
        .map_or(lines.len(), |p| start + p);
    let section = &lines[start..end];
    let is_address_line = |line: &str| -> Option<(String, String)> {
        match format {
            Format::Qmail | Format::Postfix => {
                let rest = line.strip_prefix('<')?;
                let (address, after) = rest.split_once(">:")?;
                Some((text::address(address)?, after.to_string()))
            }
            Format::Exim => {
                let indent = line.len() - line.trim_start().len();
                if indent == 0 || indent > 3 {
                    return None;
                }
                let address = text::address(line.split_whitespace().next()?)?;
                let rest = line
                    .trim_start()
                    .split_once(char::is_whitespace)
                    .map_or("", |(_, r)| r);
                Some((address, rest.to_string()))
            }
            _ => {
                let address = text::addresses(line)
                    .into_iter()
                    .find(|a| !excluded(a, exclude))?;
                Some((address, line.to_string()))
            }
        }
    };

    // Each address with the lines after each of its mentions; the
    // mention whose lines carry a code explains it best.
    let mut found: Vec<(String, String)> = Vec::new();
    for (i, line) in section.iter().enumerate().skip(1) {
        let Some((address, rest)) = is_address_line(line) else {
            continue;
        };
        if excluded(&address, exclude) {
            continue;
        }
        let mut block = rest.trim().to_string();
        for next in section[i + 1..].iter().take(BLOCK_LINES) {
            if next.trim().is_empty() || is_address_line(next).is_some() {
                break;
            }
            block.push(' ');
            block.push_str(next.trim());
        }
        match found.iter_mut().find(|(a, _)| *a == address) {
            Some((_, best)) => {
                if text::status_code(best).is_none() && text::status_code(&block).is_some() {
                    *best = block;
                }
            }
            None => found.push((address, block)),
        }
        if found.len() >= super::dsn::MAX_RECIPIENTS {
            break;
        }
    }
    if format == Format::FreeText {
        found.retain(|(_, block)| text::status_code(block).is_some());
    }
    // Gmail writes the server's answer in its own paragraph.
    if format == Format::Gmail {
        if let Some(answer) = paragraph_after(section, "server returned was:")
            .or_else(|| paragraph_after(section, "response from the remote server was:"))
        {
            for (_, block) in found.iter_mut() {
                if text::status_code(block).is_none() {
                    *block = answer.clone();
                }
            }
        }
    }
    if found.is_empty() && format == Format::FreeText {
        return None;
    }
    let action = if delayed {
        Action::Delayed
    } else {
        Action::Failed
    };
    let recipients = found
        .into_iter()
        .map(|(address, block)| RecipientReport {
            address,
            original_recipient: None,
            action,
            status: text::status_code(&block),
            diagnostic: text::diagnostic(&block),
        })
        .collect();
    Some(FreeText {
        format,
        reporting_mta: mta,
        recipients,
    })
}

/// The Message-ID quoted in the returned copy of the original message.
pub fn quoted_message_id(body: &str) -> Option<String> {
    body.lines().find_map(|line| {
        let line = line.trim_start_matches(['>', ' ', '\t']);
        let (name, value) = line.split_once(':')?;
        name.trim()
            .to_ascii_lowercase()
            .ends_with("message-id")
            .then(|| text::message_id(value))?
    })
}

/// The words a bounce's sender or subject are known by.
pub fn looks_like_bounce(subject_lower: &str, from: &str) -> bool {
    let from = from.to_ascii_lowercase();
    from.contains("mailer-daemon")
        || from.contains("postmaster")
        || [
            "undeliver",
            "delivery fail",
            "delivery status notification",
            "failure notice",
            "returned mail",
            "mail delivery failed",
            "delivery failure",
            "not delivered",
            "could not be delivered",
        ]
        .iter()
        .any(|w| subject_lower.contains(w))
}

fn excluded(address: &str, exclude: &[String]) -> bool {
    let local = address.split('@').next().unwrap_or("");
    exclude.iter().any(|e| e == address)
        || local.eq_ignore_ascii_case("mailer-daemon")
        || local.eq_ignore_ascii_case("postmaster")
}

/// The line where the returned copy of the original message starts.
fn is_quote_start(line: &str) -> bool {
    let line = line.trim();
    line.starts_with("--- Below this line is a copy")
        || line.starts_with("------ This is a copy")
        || line.starts_with("----- Original message -----")
        || line.starts_with("Original message headers:")
}

fn after(line: &str, marker: &str) -> Option<String> {
    let (_, rest) = line.split_once(marker)?;
    let host = rest.trim().trim_end_matches('.');
    (!host.is_empty()).then(|| text::one_line(host, 255))
}

fn paragraph_after(lines: &[&str], marker: &str) -> Option<String> {
    let i = lines.iter().position(|l| l.contains(marker))?;
    let paragraph: Vec<&str> = lines[i + 1..]
        .iter()
        .skip_while(|l| l.trim().is_empty())
        .take_while(|l| !l.trim().is_empty())
        .take(BLOCK_LINES)
        .map(|l| l.trim())
        .collect();
    (!paragraph.is_empty()).then(|| paragraph.join(" "))
}
