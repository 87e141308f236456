//! Secrets: [`Secret`], whose `Debug` and `Display` never show the value,
//! and [`mask_url`], a connection URL as it may be shown.

use std::fmt;

use crate::i18n::Lang;
use crate::t_in;

/// URL query parameters and key=value settings whose values are secret.
const SECRET_PARAMS: &[&str] = &["password", "sslpassword", "sslkey"];

/// A connection URL (or libpq key=value string) as it may be shown: the
/// password of the user part and the values of `password`, `sslpassword`
/// and `sslkey` replaced by `******`. Works on text that does not parse.
pub fn mask_url(text: &str) -> String {
    const MASK: &str = "******";
    let is_secret = |key: &str| {
        let key = url::form_urlencoded::parse(format!("{key}=").as_bytes())
            .next()
            .map(|(k, _)| k.to_ascii_lowercase())
            .unwrap_or_default();
        SECRET_PARAMS.contains(&key.trim())
    };
    let Some(scheme_end) = text.find("://") else {
        // key=value form: `password=x` (or `password = 'x y'`).
        let mut out = String::new();
        let mut rest = text;
        while let Some(eq) = rest.find('=') {
            let key = rest[..eq]
                .trim_end()
                .rsplit(char::is_whitespace)
                .next()
                .unwrap_or("");
            let (head, tail) = rest.split_at(eq + 1);
            out.push_str(head);
            let tail_trimmed = tail.trim_start();
            out.push_str(&tail[..tail.len() - tail_trimmed.len()]);
            let value_len = if let Some(stripped) = tail_trimmed.strip_prefix('\'') {
                stripped
                    .find('\'')
                    .map(|i| i + 2)
                    .unwrap_or(tail_trimmed.len())
            } else {
                tail_trimmed
                    .find(char::is_whitespace)
                    .unwrap_or(tail_trimmed.len())
            };
            if is_secret(key) {
                out.push_str(MASK);
            } else {
                out.push_str(&tail_trimmed[..value_len]);
            }
            rest = &tail_trimmed[value_len..];
        }
        out.push_str(rest);
        return out;
    };
    let (scheme, after) = text.split_at(scheme_end + 3);
    // The user part ends at the last '@' before the query (or anywhere, for
    // a password with an unencoded '?').
    let query_at = after.find('?').unwrap_or(after.len());
    let at = after[..query_at].rfind('@').or_else(|| after.rfind('@'));
    let mut out = String::from(scheme);
    let rest = match at {
        Some(at) => {
            let user_part = &after[..at];
            match user_part.find(':') {
                Some(colon) => {
                    out.push_str(&user_part[..colon + 1]);
                    out.push_str(MASK);
                }
                None => out.push_str(user_part),
            }
            out.push('@');
            &after[at + 1..]
        }
        None => after,
    };
    match rest.find('?') {
        Some(q) => {
            out.push_str(&rest[..q + 1]);
            let (query, fragment) = match rest[q + 1..].find('#') {
                Some(h) => (&rest[q + 1..q + 1 + h], &rest[q + 1 + h..]),
                None => (&rest[q + 1..], ""),
            };
            let pairs: Vec<String> = query
                .split('&')
                .map(|pair| match pair.split_once('=') {
                    Some((k, _)) if is_secret(k) => format!("{k}={MASK}"),
                    _ => pair.to_string(),
                })
                .collect();
            out.push_str(&pairs.join("&"));
            out.push_str(fragment);
        }
        None => out.push_str(rest),
    }
    out
}

/// A value that must never reach a log, an error message or `--json` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that sends it (a header, a connection).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// A masked form that shows only the length class, for `mailsync config`.
    pub fn masked(&self) -> String {
        self.masked_in(crate::i18n::current())
    }

    /// [`Secret::masked`] in `lang` (English for `--json`).
    pub fn masked_in(&self, lang: Lang) -> String {
        if self.0.is_empty() {
            t_in!(lang, "secret-empty")
        } else {
            t_in!(
                lang,
                "secret-masked",
                chars = self.0.chars().count().to_string()
            )
        }
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(******)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("******")
    }
}
