//! How a command speaks: results on stdout (one JSON document with `--json`),
//! notes and progress on stderr, nothing but errors with `-q`, questions on
//! the terminal. Commands take an [`Output`] rather than printing or reading
//! directly, so `--json`, `-q`, `-v`, colour and prompts are decided in one
//! place, with the cells every table shares ([`timestamp_cell`]).

use std::io::{BufRead, IsTerminal, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy, Default)]
pub struct Output {
    pub json: bool,
    pub quiet: bool,
    pub verbose: u8,
    pub color: bool,
}

impl Output {
    /// A result line for a person (stdout); silent with `--json` or `-q`.
    pub fn print(&self, text: impl AsRef<str>) {
        if !self.json && !self.quiet {
            let mut out = std::io::stdout().lock();
            let _ = writeln!(out, "{}", terminal_safe(text.as_ref()));
        }
    }

    /// A note about what is happening (stderr); silent with `-q`.
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", terminal_safe(text.as_ref()));
        }
    }

    /// Detail shown with `-v` (stderr).
    pub fn debug(&self, text: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{}", terminal_safe(text.as_ref()));
        }
    }

    /// The one JSON document of `--json` (stdout).
    pub fn json<T: Serialize>(&self, value: &T) -> Result<()> {
        let text = json_line(value)?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        out.flush()?;
        Ok(())
    }

    /// Text written to stdout as it is, whatever the flags (a completion
    /// script, a file's content).
    pub fn raw(&self, text: &str) -> Result<()> {
        let mut out = std::io::stdout().lock();
        out.write_all(text.as_bytes())?;
        out.flush()?;
        Ok(())
    }

    /// Asks a yes/no question on the terminal; the answer defaults to no.
    /// Without a terminal to ask on (stdin or stderr redirected) it does not
    /// guess: it fails with a usage error saying `no_terminal`.
    pub fn confirm(&self, question: &str, no_terminal: &str) -> Result<bool> {
        if !can_ask() {
            return Err(Error::usage(no_terminal.to_string()));
        }
        let answer = self.ask(&format!("{question} {} ", crate::t!("prompt-yes-no")))?;
        // y/yes in any language, and the language's own (o/oui in French).
        let answer = answer.trim().to_lowercase();
        Ok(matches!(answer.as_str(), "y" | "yes")
            || crate::t!("prompt-yes-answers")
                .split(' ')
                .any(|yes| yes == answer))
    }

    /// Asks for one line on the terminal (the caller checked there is one).
    pub fn ask(&self, prompt: &str) -> Result<String> {
        eprint!("{prompt}");
        let _ = std::io::stderr().flush();
        let mut line = String::new();
        std::io::stdin().lock().read_line(&mut line)?;
        Ok(line.trim().to_string())
    }

    /// Asks for a secret on the terminal, without echo.
    pub fn ask_secret(&self, prompt: &str) -> Result<String> {
        rpassword::prompt_password(prompt)
            .map_err(|e| Error::failure(crate::t!("prompt-error-password", reason = e.to_string())))
    }

    /// Whether progress bars and prompts make sense (stderr is a terminal).
    pub fn interactive(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
    }

    /// A bar over `total` steps, drawn with `template` (see
    /// [`progress_style`]) and ticking on its own; hidden where nothing may
    /// be drawn (no terminal, `-q`, `--json`).
    pub fn progress_bar(&self, total: u64, template: &str) -> indicatif::ProgressBar {
        if !self.interactive() || self.json {
            return indicatif::ProgressBar::hidden();
        }
        let bar = indicatif::ProgressBar::new(total);
        bar.set_style(progress_style(template).progress_chars("=> "));
        bar.enable_steady_tick(std::time::Duration::from_millis(200));
        bar
    }

    /// A table in the project's one style.
    pub fn table<I, S>(&self, header: I) -> Table
    where
        I: IntoIterator<Item = S>,
        S: Into<comfy_table::Cell>,
    {
        let mut table = Table::new();
        table
            .load_preset(UTF8_FULL_CONDENSED)
            .set_content_arrangement(ContentArrangement::Dynamic)
            .set_header(header);
        if !self.color {
            table.force_no_tty();
        }
        table
    }
}

static VERBOSE: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Turns on [`trace`] for this run (`-v`); set once, by `run`.
pub fn set_verbose(on: bool) {
    VERBOSE.store(on, std::sync::atomic::Ordering::Relaxed);
}

/// With `-v`, one line on stderr about what is being done (a request and its
/// timing, a batch size), for the layers that have no [`Output`]. Callers
/// pass methods, paths, counts and timings: never a header, token or key.
pub fn trace(text: impl AsRef<str>) {
    if VERBOSE.load(std::sync::atomic::Ordering::Relaxed) {
        eprintln!("· {}", terminal_safe(text.as_ref()));
    }
}

/// A progress style whose `{count}`, `{total}` and `{rate}` are written as
/// every other number of the run ([`crate::i18n::Lang::count`], rounded
/// rates), where indicatif's own `{human_pos}` and `{per_sec}` would write
/// `5,000` in any language and `24,797.3703/s`.
pub fn progress_style(template: &str) -> indicatif::ProgressStyle {
    use indicatif::ProgressState;
    let lang = crate::i18n::current();
    indicatif::ProgressStyle::with_template(template)
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar())
        .with_key(
            "count",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&lang.count(s.pos()));
            },
        )
        .with_key(
            "total",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&lang.count(s.len().unwrap_or(0)));
            },
        )
        .with_key(
            "rate",
            move |s: &ProgressState, w: &mut dyn std::fmt::Write| {
                let _ = w.write_str(&lang.per_second(s.per_sec()));
            },
        )
}

/// Whether a question can be asked: stdin and stderr are a terminal.
pub fn can_ask() -> bool {
    std::io::stdin().is_terminal() && std::io::stderr().is_terminal()
}

/// One JSON document on one line.
pub fn json_line<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value)
        .map_err(|e| Error::failure(crate::t!("json-error-encoding", reason = e.to_string())))
}

/// Whether a terminal could act on `c` rather than show it: C0 controls
/// (ESC starts the sequences that set the clipboard or clear the screen),
/// DEL, C1 controls (U+009B is a one-character CSI), and the bidirectional
/// overrides that make text read in another order than it is stored.
fn is_control(c: char) -> bool {
    c.is_control()
        || matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn escape_into(out: &mut String, c: char) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        _ => out.push_str(&format!("\\u{{{:x}}}", c as u32)),
    }
}

/// Text printed for a person, with every control character shown escaped
/// (`\u{1b}`) instead of acted on, except the line breaks and tabs of the
/// text itself. Data from a file or the database (a cell, a sheet name, an
/// organisation) reaches the terminal only through this or [`cell`].
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    if !text
        .chars()
        .any(|c| is_control(c) && c != '\n' && c != '\t')
    {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) && c != '\n' && c != '\t' {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// A value as one table cell: every control character escaped, line breaks
/// included, so that a cell stays on its row and the table keeps its shape.
pub fn cell(text: &str) -> String {
    if !text.chars().any(is_control) {
        return text.to_string();
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            escape_into(&mut out, c);
        } else {
            out.push(c);
        }
    }
    out
}

/// A timestamp as tables show it: `2026-11-25T05:49:12.123+00:00` →
/// `2026-11-25 05:49`.
pub fn timestamp_cell(t: &str) -> String {
    t.chars().take(16).collect::<String>().replace('T', " ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn control_characters_are_shown_not_acted_on() {
        let clipboard = "Acme\u{1b}]52;c;SGVsbG8=\u{7}";
        assert_eq!(
            super::terminal_safe(clipboard),
            "Acme\\u{1b}]52;c;SGVsbG8=\\u{7}"
        );
        assert_eq!(super::terminal_safe("\u{1b}[2J"), "\\u{1b}[2J");
        assert_eq!(
            super::terminal_safe("a\u{9b}b\u{202e}c"),
            "a\\u{9b}b\\u{202e}c"
        );
        assert_eq!(
            super::terminal_safe("line\nline\ttab\r"),
            "line\nline\ttab\\r"
        );
        assert_eq!(super::cell("two\nlines"), "two\\nlines");
        assert_eq!(super::cell("Éditions Lumière"), "Éditions Lumière");
        assert!(matches!(
            super::terminal_safe("plain"),
            std::borrow::Cow::Borrowed(_)
        ));
    }

    #[test]
    fn timestamps_show_date_and_minute() {
        assert_eq!(
            super::timestamp_cell("2026-11-25T05:49:12.123+00:00"),
            "2026-11-25 05:49"
        );
        assert_eq!(super::timestamp_cell(""), "");
    }
}
