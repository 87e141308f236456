//! Small readers shared by the report formats: one-line diagnostics, RFC 3463
//! codes and addresses found in free text, typed field values, dates.

/// The longest diagnostic kept, in characters.
pub const MAX_DIAGNOSTIC: usize = 500;

/// `text` on one line: control characters and runs of blanks become one
/// space, at most `max` characters (an ellipsis marks a cut).
pub fn one_line(text: &str, max: usize) -> String {
    let mut line = String::with_capacity(text.len().min(max + 4));
    let mut count = 0;
    let mut blank = false;
    for c in text.chars() {
        if c.is_whitespace() {
            blank = true;
            continue;
        }
        if c.is_control() {
            continue;
        }
        if blank && !line.is_empty() {
            line.push(' ');
            count += 1;
        }
        blank = false;
        if count >= max {
            line.push('…');
            return line;
        }
        line.push(c);
        count += 1;
    }
    line
}

/// A diagnostic for a report: one line, bounded, `None` when empty.
pub fn diagnostic(text: &str) -> Option<String> {
    let line = one_line(text, MAX_DIAGNOSTIC);
    (!line.is_empty()).then_some(line)
}

/// The first RFC 3463 status code (`5.1.1`, `4.4.7`) in `text`, not a piece
/// of an IP address or a version number.
pub fn status_code(text: &str) -> Option<String> {
    let bytes = text.as_bytes();
    let boundary = |i: Option<usize>| match i.and_then(|i| bytes.get(i)) {
        Some(b) => !b.is_ascii_digit() && *b != b'.',
        None => true,
    };
    for start in 0..bytes.len() {
        if !matches!(bytes[start], b'2' | b'4' | b'5') || !boundary(start.checked_sub(1)) {
            continue;
        }
        let mut i = start + 1;
        let mut ok = true;
        for _ in 0..2 {
            if bytes.get(i) != Some(&b'.') {
                ok = false;
                break;
            }
            i += 1;
            let digits = bytes[i.min(bytes.len())..]
                .iter()
                .take_while(|b| b.is_ascii_digit())
                .count();
            if digits == 0 || digits > 3 {
                ok = false;
                break;
            }
            i += digits;
        }
        if ok && boundary(Some(i)) {
            return Some(text[start..i].to_string());
        }
    }
    None
}

/// A status field's code when it is a valid RFC 3463 code.
pub fn valid_status(value: &str) -> Option<String> {
    let code = value.split_whitespace().next()?;
    (status_code(code).as_deref() == Some(code)).then(|| code.to_string())
}

fn local_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b".!#$%&'*+/=?^_`{|}~-".contains(&b)
}

fn domain_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'.' || b == b'-'
}

/// The addresses written in `text`, lower-cased, in order, each once.
pub fn addresses(text: &str) -> Vec<String> {
    let bytes = text.as_bytes();
    let mut found: Vec<String> = Vec::new();
    for (at, _) in text.match_indices('@') {
        let start = bytes[..at]
            .iter()
            .rposition(|b| !local_char(*b))
            .map_or(0, |p| p + 1);
        let end = bytes[at + 1..]
            .iter()
            .position(|b| !domain_char(*b))
            .map_or(bytes.len(), |p| at + 1 + p);
        let local = text[start..at].trim_start_matches('.');
        let domain = text[at + 1..end].trim_end_matches(['.', '-']);
        if local.is_empty() || !domain.contains('.') || domain.starts_with('.') {
            continue;
        }
        let address = format!("{local}@{domain}").to_ascii_lowercase();
        if !found.contains(&address) {
            found.push(address);
        }
    }
    found
}

/// The first address in `text`.
pub fn address(text: &str) -> Option<String> {
    addresses(text).into_iter().next()
}

/// A typed field's value without its type: `rfc822; a@b` → `a@b`,
/// `smtp; 550 ...` → `550 ...`, `dns; mx.example.com` → `mx.example.com`.
pub fn untyped(value: &str) -> &str {
    match value.split_once(';') {
        Some((kind, rest))
            if !kind.trim().is_empty()
                && kind.trim().len() <= 20
                && kind
                    .trim()
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-') =>
        {
            rest.trim()
        }
        _ => value.trim(),
    }
}

/// A Message-ID without its angle brackets and blanks.
pub fn message_id(value: &str) -> Option<String> {
    let value = value.trim();
    let inner = match (value.find('<'), value.find('>')) {
        (Some(open), Some(close)) if open < close => &value[open + 1..close],
        _ => value.split_whitespace().next().unwrap_or(""),
    };
    let id = one_line(inner, 250);
    (!id.is_empty()).then_some(id)
}

/// An RFC 5322 date as RFC 3339, or the date as written (one line) when it
/// cannot be read.
pub fn date(value: &str) -> Option<String> {
    let value = value.trim();
    if value.is_empty() {
        return None;
    }
    match mail_parser::DateTime::parse_rfc822(value) {
        Some(d) if d.is_valid() => Some(d.to_rfc3339()),
        _ => Some(one_line(value, 100)),
    }
}

/// The VERP token of an address `local+TOKEN@domain`.
pub fn verp_token(address: &str) -> Option<String> {
    let local = address.trim().trim_start_matches('<').split('@').next()?;
    let (_, token) = local.split_once('+')?;
    let token = one_line(token, 100);
    (!token.is_empty()).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_codes_are_found_and_addresses_are_not_taken_for_them() {
        assert_eq!(status_code("550 5.1.1 <a@b.c>").as_deref(), Some("5.1.1"));
        assert_eq!(status_code("host [192.0.2.1] said 550"), None);
        assert_eq!(status_code("#4.4.7 smtp").as_deref(), Some("4.4.7"));
        assert_eq!(status_code("version 2.4.5.1"), None);
        assert_eq!(status_code("5.7.1234"), None);
        assert_eq!(valid_status("5.0.0 (permanent)").as_deref(), Some("5.0.0"));
        assert_eq!(valid_status("failed"), None);
    }

    #[test]
    fn addresses_are_lower_cased_and_unique() {
        assert_eq!(
            addresses("<John.Doe@Example.COM>: said john.doe@example.com. and x@y"),
            vec!["john.doe@example.com".to_string()]
        );
    }

    #[test]
    fn one_line_strips_controls_and_bounds() {
        assert_eq!(one_line("a\r\n\t b\u{7}c", 10), "a bc");
        assert_eq!(one_line("abcdef", 3), "abc…");
    }

    #[test]
    fn typed_values_lose_their_type() {
        assert_eq!(untyped("rfc822; A@b.c"), "A@b.c");
        assert_eq!(untyped("smtp; 550 5.1.1 x; y"), "550 5.1.1 x; y");
        assert_eq!(untyped("550 user unknown"), "550 user unknown");
        assert_eq!(message_id(" <abc@d.e> (x)").as_deref(), Some("abc@d.e"));
        assert_eq!(verp_token("bounce+123@x.y").as_deref(), Some("123"));
        assert_eq!(
            date("Thu, 3 Dec 2026 10:00:00 +0000").as_deref(),
            Some("2026-12-03T10:00:00Z")
        );
    }
}
