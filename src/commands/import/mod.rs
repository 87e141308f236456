//! `mailsync import FILE`: contacts from a spreadsheet, through PostgREST
//! under the user's own JWT, so Row Level Security applies to every row.
//!
//! Two passes over the sheet, never holding its rows in memory: the first
//! validates every row and finds, for each email, the row that wins (the
//! last); the second sends the winning rows in batches to
//! `rpc/import_contacts`, which upserts them set-wise and returns exact
//! counts. A batch is one transaction and the upsert is idempotent, so a
//! re-run after any failure finishes the job without duplicates.
//!
//! Here: the command, its steps in order; `first_pass` (every row read and
//! classified, the checks before sending), `validate` (cells to contacts:
//! columns, emails, rejects), `load` (the second pass, batches to the
//! server), `report` (what is printed), `rejects` (the rejected rows, in
//! bounded memory, streamed to `--rejects`). The sheet itself is read by
//! [`crate::spreadsheet`].
//! Server side: `import_contacts(rows)` and `import_rows(rows)` in
//! `sql/MASTER-DATABASE.sql`. Tests: `tests/it/import.rs`, `tests/it/import_fuzz.rs`.

pub mod first_pass;
pub mod load;
pub mod rejects;
pub mod report;
pub mod validate;

/// The limits a file is read within (their defaults are the flags' defaults).
pub use crate::spreadsheet::limits;
pub use first_pass::{scan, Scan};

use std::path::PathBuf;
use std::time::Duration;

use indicatif::ProgressBar;

use crate::error::{Error, ErrorKind, Result};
use crate::output::Output;
use crate::settings::Config;
use crate::spreadsheet::reader::Workbook;
use first_pass::{check, read_rows};
use load::Sent;
use report::Report;
use validate::ColumnSpec;

/// What `mailsync import` was asked to do.
#[derive(Debug, Clone)]
pub struct Options {
    pub file: PathBuf,
    pub sheet: Option<String>,
    /// CSV only: the text encoding, instead of detecting it.
    pub encoding: Option<String>,
    pub org_column: String,
    pub email_column: String,
    pub dry_run: bool,
    pub strict: bool,
    pub rejects: Option<PathBuf>,
    pub batch_size: usize,
    /// Batches sent at once (see [`load::send`]).
    pub in_flight: usize,
    /// What a file may ask for (see [`limits`]).
    pub limits: limits::Limits,
}

pub const DEFAULT_BATCH_SIZE: usize = 5000;
pub use load::DEFAULT_IN_FLIGHT;

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    if options.batch_size == 0 || options.batch_size > 50_000 {
        return Err(Error::usage(crate::t!("import-error-batch-size")));
    }
    if !(1..=8).contains(&options.in_flight) {
        return Err(Error::usage(crate::t!("import-error-in-flight")));
    }
    if let Some(rejects) = &options.rejects {
        report::check_rejects_path(&options.file, rejects)?;
    }
    let org_spec = ColumnSpec::parse(&options.org_column)?;
    let email_spec = ColumnSpec::parse(&options.email_column)?;
    // Resolve who the user is before reading a large file, so a missing or
    // expired session fails at once.
    let client = if options.dry_run {
        None
    } else {
        Some(crate::supabase::user::user_client(config, out).await?)
    };

    let path = options.file.clone();
    let sheet = options.sheet.clone();
    let limits = options.limits;
    let encoding = options.encoding.clone();
    let book = blocking(move || {
        Workbook::open_with(&path, sheet.as_deref(), limits)?.with_encoding(encoding.as_deref())
    })
    .await?;
    // From here on Ctrl-C (or SIGTERM) stops cleanly: the reading stops
    // and nothing is sent, or the batches in flight finish and are counted.
    let _signal = crate::interrupt::CleanStop::hold(Some(crate::t!("import-stopping")));
    let rejects = match &options.rejects {
        Some(path) => rejects::Rejects::to_file(path)?,
        None => rejects::Rejects::new(),
    };
    let scan = {
        let book = book.clone();
        let progress = spinner(
            out,
            &crate::t!("import-reading", sheet = crate::output::cell(&book.sheet)),
        );
        let bar = progress.clone();
        let scan = blocking(move || read_rows(&book, &org_spec, &email_spec, &bar, rejects)).await;
        progress.finish_and_clear();
        scan?
    };
    let mut scan = scan;
    // The rejects file is complete once the sheet is read: it is written
    // even when the checks below stop the import, since it shows why.
    scan.rejects.persist()?;
    check(&book, &scan)?;
    let mut report = Report::new(&book, &scan);

    if options.strict && !scan.rejects.is_empty() {
        report.print(out, report::Outcome::StrictRefused)?;
        return Err(Error::check_failed(crate::t!(
            "import-error-strict",
            file = book.path.display().to_string(),
            count = scan.rejects.total()
        )));
    }
    let Some(client) = client else {
        report.print(out, report::Outcome::DryRun)?;
        return Ok(());
    };

    let outcome = load::send(
        &client,
        &book,
        scan,
        options.batch_size,
        options.in_flight,
        out,
        &mut report,
    )
    .await;
    match outcome {
        Ok(Sent::All) => report.print(out, report::Outcome::Done),
        Ok(Sent::Interrupted { next_row }) => {
            report.interrupted = true;
            report.print(out, report::Outcome::Interrupted)?;
            Err(Error::new(
                ErrorKind::Interrupted,
                crate::t!("import-error-interrupted", row = next_row.to_string()),
            )
            .with_hint(crate::t!("import-error-interrupted-hint")))
        }
        Err(e) => {
            if report.written() > 0 {
                out.note(report.partial_note());
            }
            Err(e)
        }
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::failure(crate::t!("import-error-reading", reason = e.to_string())))?
}

fn spinner(out: &Output, message: &str) -> ProgressBar {
    if !out.interactive() || out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(crate::output::progress_style(&format!(
        "{{spinner}} {{msg}}: {} ({{rate}})",
        crate::t!("progress-rows", count = "{count}")
    )));
    bar.set_message(message.to_string());
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
