//! How a command speaks: results on stdout (one JSON document with `--json`),
//! notes and progress on stderr, nothing but errors with `-q`. Commands take
//! an [`Output`] rather than printing directly, so `--json`, `-q`, `-v` and
//! colour are decided in one place.

use std::io::{IsTerminal, Write};

use comfy_table::presets::UTF8_FULL_CONDENSED;
use comfy_table::{ContentArrangement, Table};
use serde::Serialize;

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
            let _ = writeln!(out, "{}", text.as_ref());
        }
    }

    /// A note about what is happening (stderr); silent with `-q`.
    pub fn note(&self, text: impl AsRef<str>) {
        if !self.quiet {
            eprintln!("{}", text.as_ref());
        }
    }

    /// Detail shown with `-v` (stderr).
    pub fn debug(&self, text: impl AsRef<str>) {
        if self.verbose > 0 && !self.quiet {
            eprintln!("{}", text.as_ref());
        }
    }

    /// The one JSON document of `--json` (stdout).
    pub fn json<T: Serialize>(&self, value: &T) -> crate::error::Result<()> {
        let text = serde_json::to_string(value)
            .map_err(|e| crate::error::Error::failure(format!("encoding JSON output: {e}")))?;
        let mut out = std::io::stdout().lock();
        writeln!(out, "{text}")?;
        out.flush()?;
        Ok(())
    }

    /// Whether progress bars and prompts make sense (stderr is a terminal).
    pub fn interactive(&self) -> bool {
        !self.quiet && std::io::stderr().is_terminal()
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
