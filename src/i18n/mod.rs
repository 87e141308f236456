//! The language of a run and everything worded for a person in it: one
//! language per run (English unless the locale or `--lang` says French),
//! messages looked up in the Fluent files of `locales/` (embedded at build
//! time), and the one place numbers are written for a person ([`Lang::count`],
//! [`Lang::percent`], [`Lang::per_second`], [`Lang::seconds`]).
//!
//! JSON output, flags and `--help` are not translated: scripts and docs rely
//! on them. Commands word their output with [`t!`](crate::t) (the run's
//! language) or [`t_in!`](crate::t_in) (a given one, for pure renderers and
//! tests).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU8, Ordering};

pub use fluent_templates::fluent_bundle::FluentValue;
use fluent_templates::{LanguageIdentifier, Loader};

use crate::error::{Error, Result};

fluent_templates::static_loader! {
    static LOCALES = {
        locales: "./locales",
        fallback_language: "en",
        // No Unicode isolation marks around arguments (they would show in
        // terminals and tables), and numbers written by [`Lang::count`].
        customise: |bundle| {
            bundle.set_use_isolating(false);
            if bundle.locales.first().is_some_and(|l| l.language.as_str() == "fr") {
                bundle.set_formatter(Some(|v, _| format_value(Lang::Fr, v)));
            } else {
                bundle.set_formatter(Some(|v, _| format_value(Lang::En, v)));
            }
        },
    };
}

/// A language mailsync speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Lang {
    #[default]
    En,
    Fr,
}

static CURRENT: AtomicU8 = AtomicU8::new(0);

/// Sets the language of this run (once, by `run`).
pub fn set(lang: Lang) {
    CURRENT.store(lang as u8, Ordering::Relaxed);
}

/// The language of this run (English until [`set`]).
pub fn current() -> Lang {
    match CURRENT.load(Ordering::Relaxed) {
        1 => Lang::Fr,
        _ => Lang::En,
    }
}

/// The language a run speaks: `--lang` when given, else `MAILSYNC_LANG`,
/// else the POSIX locale for messages ([`of_locale`]). A `MAILSYNC_LANG`
/// that names neither language is a usage error rather than a silent
/// default, worded in the locale's language.
pub fn detect(flag: Option<Lang>, env: impl Fn(&str) -> Option<String>) -> Result<Lang> {
    if let Some(lang) = flag {
        return Ok(lang);
    }
    let locale = of_locale(&env);
    if let Some(value) = env("MAILSYNC_LANG").filter(|v| !v.is_empty()) {
        let lower = value.to_ascii_lowercase();
        return if lower.starts_with("fr") {
            Ok(Lang::Fr)
        } else if lower.starts_with("en") {
            Ok(Lang::En)
        } else {
            Err(Error::usage(crate::t_in!(
                locale,
                "lang-error-unknown",
                value = value.as_str()
            ))
            .with_hint(crate::t_in!(locale, "lang-hint-unknown")))
        };
    }
    Ok(locale)
}

/// The language of the POSIX locale for messages: the first non-empty of
/// `LC_ALL`, `LC_MESSAGES`, `LANG`. French when that starts with `fr`,
/// English otherwise (`C`, `POSIX`, `en_US.UTF-8`, unset).
pub fn of_locale(env: impl Fn(&str) -> Option<String>) -> Lang {
    let locale = ["LC_ALL", "LC_MESSAGES", "LANG"]
        .into_iter()
        .filter_map(&env)
        .find(|v| !v.is_empty())
        .unwrap_or_default();
    if locale.to_ascii_lowercase().starts_with("fr") {
        Lang::Fr
    } else {
        Lang::En
    }
}

/// [`detect`] with the process environment.
pub fn detect_from_environment(flag: Option<Lang>) -> Result<Lang> {
    detect(flag, |name| std::env::var(name).ok())
}

/// Sets this run's language from the flag and the environment; when
/// `MAILSYNC_LANG` is wrong, the locale's language is set (the error is
/// worded in it) and the error returned.
pub fn set_from_environment(flag: Option<Lang>) -> Result<()> {
    match detect_from_environment(flag) {
        Ok(lang) => {
            set(lang);
            Ok(())
        }
        Err(e) => {
            set(of_locale(|name| std::env::var(name).ok()));
            Err(e)
        }
    }
}

/// `3051` → `3,051` (English) or `3 051` (French, narrow no-break space).
fn group(lang: Lang, digits: &str) -> String {
    let separator = match lang {
        Lang::En => ',',
        Lang::Fr => '\u{202f}',
    };
    let mut out = String::with_capacity(digits.len() + digits.len() / 3 * 3);
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(separator);
        }
        out.push(ch);
    }
    out
}

fn format_value(lang: Lang, value: &FluentValue) -> Option<String> {
    match value {
        FluentValue::Number(n) if n.value.fract() == 0.0 && n.value.abs() < 1e15 => {
            Some(lang.count(n.value as i64))
        }
        FluentValue::Number(n) => Some(lang.decimal(n.value, 1)),
        _ => None,
    }
}

impl Lang {
    pub fn code(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Fr => "fr",
        }
    }

    fn id(self) -> LanguageIdentifier {
        self.code().parse().expect("a valid language code")
    }

    /// The message `id` with its arguments, in this language. A message
    /// missing here falls back to English, then to its id (a unit test keeps
    /// both files complete).
    pub fn text(self, id: &str, args: &[(&'static str, FluentValue<'_>)]) -> String {
        let map: HashMap<Cow<'static, str>, FluentValue<'_>> = args
            .iter()
            .map(|(k, v)| (Cow::Borrowed(*k), v.clone()))
            .collect();
        let args = (!map.is_empty()).then_some(&map);
        LOCALES
            .try_lookup_complete(&self.id(), id, args)
            .or_else(|| LOCALES.try_lookup_complete(&Lang::En.id(), id, args))
            .unwrap_or_else(|| id.to_string())
    }

    /// A count: `12,480` / `12 480`.
    pub fn count(self, n: impl Into<i128>) -> String {
        let n: i128 = n.into();
        let grouped = group(self, &n.unsigned_abs().to_string());
        if n < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    }

    /// A number with `places` decimals: `3.2` / `3,2`, grouped.
    pub fn decimal(self, x: f64, places: usize) -> String {
        if !x.is_finite() {
            return "–".to_string();
        }
        let text = format!("{:.*}", places, x.abs());
        let (whole, fraction) = text.split_once('.').unwrap_or((&text, ""));
        let mut out = String::new();
        if x < 0.0 && text.chars().any(|c| c.is_ascii_digit() && c != '0') {
            out.push('-');
        }
        out.push_str(&group(self, whole));
        if !fraction.is_empty() {
            out.push(match self {
                Lang::En => '.',
                Lang::Fr => ',',
            });
            out.push_str(fraction);
        }
        out
    }

    /// A percentage with one decimal: `65.7%` / `65,7 %`. Only exactly 0 and
    /// 100 are written as such: 99.96 is `99.9%`, not a `100.0%` that would
    /// claim every email succeeded.
    pub fn percent(self, p: f64) -> String {
        let p = p.clamp(0.0, 100.0);
        let shown = if p > 0.0 && p < 0.1 {
            0.1
        } else if p < 100.0 && p > 99.9 {
            99.9
        } else {
            p
        };
        let number = self.decimal(shown, 1);
        match self {
            Lang::En => format!("{number}%"),
            Lang::Fr => format!("{number}\u{202f}%"),
        }
    }

    /// A rate per second, rounded: `43/s`, `1,500/s`, `0/s`, and one
    /// decimal between 0 and 10 (`3.2/s`).
    pub fn per_second(self, rate: f64) -> String {
        if rate >= 10.0 || rate <= 0.0 {
            format!("{}/s", self.count(rate.max(0.0).round() as i64))
        } else {
            format!("{}/s", self.decimal(rate.max(0.0), 1))
        }
    }

    /// A duration in seconds with one decimal: `12.3 s` / `12,3 s`.
    pub fn seconds(self, s: f64) -> String {
        format!("{} s", self.decimal(s, 1))
    }
}

/// The message `id` in this run's language, with named arguments:
/// `t!("watch-finished", count = 2)`.
#[macro_export]
macro_rules! t {
    ($id:literal $(, $k:ident = $v:expr)* $(,)?) => {
        $crate::i18n::current().text(
            $id,
            &[$((stringify!($k), $crate::i18n::FluentValue::from($v))),*],
        )
    };
}

/// The message `id` in the given language: `t_in!(lang, "watch-finished", count = 2)`.
#[macro_export]
macro_rules! t_in {
    ($lang:expr, $id:literal $(, $k:ident = $v:expr)* $(,)?) => {
        $lang.text(
            $id,
            &[$((stringify!($k), $crate::i18n::FluentValue::from($v))),*],
        )
    };
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, BTreeSet};

    use super::*;

    fn env<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn the_locale_is_read_in_posix_order() {
        let lang = |pairs: &[(&str, &str)]| detect(None, env(pairs)).unwrap();
        assert_eq!(lang(&[]), Lang::En);
        assert_eq!(lang(&[("LANG", "fr_FR.UTF-8")]), Lang::Fr);
        assert_eq!(lang(&[("LANG", "C")]), Lang::En);
        // LC_ALL before LC_MESSAGES before LANG; an empty one is skipped.
        assert_eq!(
            lang(&[
                ("LC_ALL", "en_GB.UTF-8"),
                ("LC_MESSAGES", "fr_FR"),
                ("LANG", "fr_FR")
            ]),
            Lang::En
        );
        assert_eq!(
            lang(&[("LC_ALL", ""), ("LC_MESSAGES", "fr_CA"), ("LANG", "en_US")]),
            Lang::Fr
        );
        assert_eq!(lang(&[("LC_MESSAGES", "C"), ("LANG", "fr_FR")]), Lang::En);
        // MAILSYNC_LANG before the locale; the flag before both.
        assert_eq!(lang(&[("MAILSYNC_LANG", "fr"), ("LC_ALL", "C")]), Lang::Fr);
        assert_eq!(
            lang(&[("MAILSYNC_LANG", "en"), ("LANG", "fr_FR")]),
            Lang::En
        );
        assert_eq!(lang(&[("MAILSYNC_LANG", ""), ("LANG", "fr_FR")]), Lang::Fr);
        let fr = [("MAILSYNC_LANG", "fr"), ("LC_ALL", "fr_FR")];
        assert_eq!(detect(Some(Lang::En), env(&fr)).unwrap(), Lang::En);
        assert_eq!(
            detect(Some(Lang::Fr), env(&[("LC_ALL", "C")])).unwrap(),
            Lang::Fr
        );
        let wrong = detect(None, env(&[("MAILSYNC_LANG", "de")])).unwrap_err();
        assert_eq!(wrong.kind(), crate::error::ErrorKind::Usage);
    }

    #[test]
    fn numbers_are_written_one_way_per_language() {
        assert_eq!(Lang::En.count(3051), "3,051");
        assert_eq!(Lang::Fr.count(3051), "3\u{202f}051");
        assert_eq!(Lang::En.count(1_234_567u64), "1,234,567");
        assert_eq!(Lang::En.count(12), "12");
        assert_eq!(Lang::En.count(-4000), "-4,000");
        assert_eq!(Lang::En.per_second(24797.3703), "24,797/s");
        assert_eq!(Lang::Fr.per_second(24797.3703), "24\u{202f}797/s");
        assert_eq!(Lang::En.per_second(3.25), "3.2/s");
        assert_eq!(Lang::Fr.per_second(3.25), "3,2/s");
        assert_eq!(Lang::En.per_second(0.0), "0/s");
        assert_eq!(Lang::En.percent(65.69), "65.7%");
        assert_eq!(Lang::Fr.percent(65.69), "65,7\u{202f}%");
        assert_eq!(Lang::En.percent(99.96), "99.9%");
        assert_eq!(Lang::En.percent(100.0), "100.0%");
        assert_eq!(Lang::En.percent(0.01), "0.1%");
        assert_eq!(Lang::En.percent(0.0), "0.0%");
        assert_eq!(Lang::En.seconds(12.34), "12.3 s");
        assert_eq!(Lang::Fr.seconds(1234.5), "1\u{202f}234,5 s");
        assert_eq!(Lang::En.decimal(-0.01, 1), "0.0");
    }

    #[test]
    fn messages_format_their_numbers_and_plurals() {
        let one = t_in!(Lang::En, "test-count", count = 1);
        let many = t_in!(Lang::En, "test-count", count = 12480);
        assert_eq!(one, "1 campaign");
        assert_eq!(many, "12,480 campaigns");
        // French counts 0 and 1 as singular.
        assert_eq!(t_in!(Lang::Fr, "test-count", count = 0), "0 campagne");
        assert_eq!(
            t_in!(Lang::Fr, "test-count", count = 12480),
            "12\u{202f}480 campagnes"
        );
    }

    /// Each message of a language file: its id and the `$variables` it uses.
    fn messages(lang: &str) -> BTreeMap<String, BTreeSet<String>> {
        let path = format!("{}/locales/{lang}/mailsync.ftl", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(path).unwrap();
        let mut messages = BTreeMap::new();
        let mut current: Option<String> = None;
        for line in text.lines() {
            if line.starts_with(|c: char| c.is_ascii_lowercase()) {
                let (id, body) = line.split_once(" =").expect("a message line");
                current = Some(id.to_string());
                let previous = messages.insert(id.to_string(), BTreeSet::new());
                assert!(previous.is_none(), "{lang}: {id} is written twice");
                variables(body, messages.get_mut(id).unwrap());
            } else if line.starts_with(' ') {
                if let Some(id) = &current {
                    variables(line, messages.get_mut(id).unwrap());
                }
            } else {
                current = None;
            }
        }
        messages
    }

    fn variables(text: &str, into: &mut BTreeSet<String>) {
        for (i, _) in text.match_indices('$') {
            let name: String = text[i + 1..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            into.insert(name);
        }
    }

    /// The non-test code of `src/`, file by file.
    fn sources() -> Vec<(String, String)> {
        let root = env!("CARGO_MANIFEST_DIR");
        let mut files = Vec::new();
        let mut stack = vec![std::path::PathBuf::from(format!("{root}/src"))];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(dir).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    let code = text.split("#[cfg(test)]").next().unwrap_or_default();
                    let code: Vec<&str> = code
                        .lines()
                        .filter(|l| !l.trim_start().starts_with("//"))
                        .collect();
                    let name = path.strip_prefix(root).unwrap().display().to_string();
                    files.push((name, code.join("\n")));
                }
            }
        }
        files.sort();
        files
    }

    /// The ids given to `t!` and `t_in!` in `code`.
    fn used_ids(code: &str) -> Vec<String> {
        let mut used = Vec::new();
        for macro_open in ["t!(", "t_in!("] {
            for (i, _) in code.match_indices(macro_open) {
                let before = code[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // format!(, print!(
                }
                let rest = &code[i + macro_open.len()..];
                let id = rest.split('"').nth(1).unwrap_or_default();
                let is_id = id.starts_with(|c: char| c.is_ascii_lowercase())
                    && id
                        .chars()
                        .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
                if is_id {
                    used.push(id.to_string());
                }
            }
        }
        used
    }

    /// The two files hold the same messages with the same variables; every
    /// message the code uses is written, and every message written is used:
    /// a message can only be missing, or left behind, by a test failing.
    #[test]
    fn both_languages_have_every_message() {
        let en = messages("en");
        let fr = messages("fr");
        let only: Vec<_> = en.keys().filter(|id| !fr.contains_key(*id)).collect();
        assert_eq!(only, Vec::<&String>::new(), "messages in English only");
        let only: Vec<_> = fr.keys().filter(|id| !en.contains_key(*id)).collect();
        assert_eq!(only, Vec::<&String>::new(), "messages in French only");
        for (id, vars) in &en {
            assert_eq!(vars, &fr[id], "{id}: the two languages use other variables");
        }
        let mut used = BTreeSet::new();
        for (file, code) in sources() {
            for id in used_ids(&code) {
                assert!(en.contains_key(&id), "{file}: message {id} is not written");
                used.insert(id);
            }
        }
        assert!(used.len() > 300, "{}", used.len());
        // An id chosen at run time (`Lang::text(id, …)`) is a literal too.
        let code: String = sources().into_iter().map(|(_, code)| code).collect();
        let unused: Vec<_> = en
            .keys()
            .filter(|id| !used.contains(*id) && id.as_str() != "test-count")
            .filter(|id| !code.contains(&format!("\"{id}\"")))
            .collect();
        assert_eq!(unused, Vec::<&String>::new(), "messages no code uses");
    }

    /// Every message renders in both languages, given its variables: a
    /// syntax error, or a French message naming a variable the code does not
    /// pass, would otherwise fall back to English (or to the id) silently.
    #[test]
    fn every_message_renders_in_both_languages() {
        for (id, vars) in messages("en") {
            let args: HashMap<Cow<'static, str>, FluentValue> = vars
                .iter()
                .map(|v| (Cow::Owned(v.clone()), FluentValue::from("x")))
                .collect();
            for lang in [Lang::En, Lang::Fr] {
                let text = LOCALES.try_lookup_complete(&lang.id(), &id, Some(&args));
                assert!(
                    text.as_deref().is_some_and(|t| !t.trim().is_empty()),
                    "{id} does not render in {}",
                    lang.code()
                );
            }
        }
    }

    /// No new hard-coded English where mailsync words something for a
    /// person: the text given to `Error::…(`, `.with_hint(`, `.context(`,
    /// `out.print(`, `out.note(` and `eprintln!(` comes from a message
    /// (`t!`), or is a literal of at most one word (a frame such as
    /// `"{what}: {}"`).
    #[test]
    fn words_for_people_come_from_the_message_files() {
        const OPENERS: &[&str] = &[
            "Error::new(",
            "Error::failure(",
            "Error::usage(",
            "Error::config(",
            "Error::unreachable(",
            "Error::refused(",
            "Error::data(",
            "Error::check_failed(",
            ".with_hint(",
            ".context(",
            "out.print(",
            "out.note(",
            "eprintln!(",
        ];
        let mut found = Vec::new();
        for (file, code) in sources() {
            for opener in OPENERS {
                for (i, _) in code.match_indices(opener) {
                    let args = call_arguments(&code[i + opener.len()..]);
                    for literal in literals(&without_messages(args)) {
                        if has_two_words(&literal) {
                            found.push(format!("{file}: {opener}\"{literal}\""));
                        }
                    }
                }
            }
        }
        assert!(
            found.is_empty(),
            "words for people written in the code, not in locales/*/mailsync.ftl:\n{}",
            found.join("\n")
        );
        // The check itself sees what it must.
        let sample = r#"Error::usage(format!("{name} is not a number"))"#;
        let args = call_arguments(&sample["Error::usage(".len()..]);
        assert!(literals(&without_messages(args))
            .iter()
            .any(|l| has_two_words(l)));
        let sample = r#"Error::usage(t!("some-id", file = format!("{x}: {y}")))"#;
        let args = call_arguments(&sample["Error::usage(".len()..]);
        assert!(!literals(&without_messages(args))
            .iter()
            .any(|l| has_two_words(l)));
    }

    /// The text up to the parenthesis that closes a call (strings skipped).
    fn call_arguments(text: &str) -> &str {
        let mut depth = 1;
        let mut in_string = false;
        let mut escaped = false;
        for (i, c) in text.char_indices() {
            match c {
                _ if escaped => escaped = false,
                '\\' if in_string => escaped = true,
                '"' => in_string = !in_string,
                '(' if !in_string => depth += 1,
                ')' if !in_string => {
                    depth -= 1;
                    if depth == 0 {
                        return &text[..i];
                    }
                }
                _ => {}
            }
        }
        text
    }

    /// `text` without the ids of `t!("id"` and `t_in!(lang, "id"`.
    fn without_messages(text: &str) -> String {
        let mut cut = Vec::new();
        for open in ["t!(", "t_in!("] {
            for (i, _) in text.match_indices(open) {
                let before = text[..i].chars().next_back();
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                    continue; // format!(, print!(
                }
                // The id is the first literal of the call.
                let from = i + open.len();
                if let Some(quote) = text[from..].find('"').map(|q| from + q) {
                    if let Some(close) = text[quote + 1..].find('"') {
                        cut.push(quote..quote + close + 2);
                    }
                }
            }
        }
        text.char_indices()
            .filter(|(i, _)| !cut.iter().any(|r| r.contains(i)))
            .map(|(_, c)| c)
            .collect()
    }

    /// The string literals in `code`, with `{placeholders}` removed.
    fn literals(code: &str) -> Vec<String> {
        let mut found = Vec::new();
        let mut chars = code.chars();
        while let Some(c) = chars.next() {
            if c != '"' {
                continue;
            }
            let mut literal = String::new();
            let mut escaped = false;
            for c in chars.by_ref() {
                match c {
                    _ if escaped => {
                        escaped = false;
                        literal.push(c);
                    }
                    '\\' => escaped = true,
                    '"' => break,
                    _ => literal.push(c),
                }
            }
            let mut plain = String::new();
            let mut depth = 0;
            for c in literal.chars() {
                match c {
                    '{' => depth += 1,
                    '}' => depth = (depth - 1).max(0),
                    _ if depth == 0 => plain.push(c),
                    _ => {}
                }
            }
            found.push(plain);
        }
        found
    }

    fn has_two_words(text: &str) -> bool {
        let words: Vec<&str> = text
            .split(|c: char| !c.is_alphabetic())
            .filter(|w| w.chars().count() >= 2)
            .collect();
        words.len() >= 2
    }
}
