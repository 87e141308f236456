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
//! Here: the command and the first pass; `reader` (the sheet), `validate`
//! (columns, emails, rejects), `load` (the second pass, batches to the
//! server), `report` (what is printed), `rejects` (the rejected rows, in
//! bounded memory, streamed to `--rejects`).
//! Server side: `import_contacts(rows)` and `import_rows(rows)` in
//! `sql/MASTER-DATABASE.sql`. Tests: `tests/it/import.rs`, `tests/it/import_fuzz.rs`.

pub mod encoding;
pub mod limits;
pub mod load;
mod ole;
pub mod reader;
pub mod rejects;
pub mod report;
pub mod validate;
mod xlsb;

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use indicatif::ProgressBar;

use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Output;
use load::Sent;
use reader::{SheetRow, Workbook};
use report::Report;
use validate::{classify, is_email, resolve_columns, Classified, ColumnSpec, Columns};

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
            report.print(out, report::Outcome::Interrupted)?;
            Err(Error::failure(crate::t!(
                "import-error-interrupted",
                row = next_row.to_string()
            ))
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

/// What the first pass learned.
#[derive(Debug)]
pub struct Scan {
    pub header_row: Option<u32>,
    pub columns: Columns,
    pub rows: u64,
    pub blank: u64,
    pub duplicates: u64,
    pub rejects: rejects::Rejects,
    /// For each email, the sheet row that wins (the last one).
    pub winners: HashMap<String, u32>,
    /// The most cells a row had.
    widest: usize,
    /// Which columns hold emails in the first rows.
    email_like: EmailLike,
    header: Option<SheetRow>,
}

impl Scan {
    pub fn unique(&self) -> u64 {
        self.winners.len() as u64
    }
}

/// The first pass and its checks, with the rejects kept in memory only.
pub fn scan(
    book: &Workbook,
    org: &ColumnSpec,
    email: &ColumnSpec,
    progress: &ProgressBar,
) -> Result<Scan> {
    let scan = read_rows(book, org, email, progress, rejects::Rejects::new())?;
    check(book, &scan)?;
    Ok(scan)
}

/// The first pass: header, columns, every row classified (rejects to
/// `rejects`), winners found.
pub fn read_rows(
    book: &Workbook,
    org: &ColumnSpec,
    email: &ColumnSpec,
    progress: &ProgressBar,
    rejects: rejects::Rejects,
) -> Result<Scan> {
    let file = book.path.display().to_string();
    let mut rows = book.rows();
    // The first row with anything in it decides the columns and the header.
    let mut first: Option<SheetRow> = None;
    for row in rows.by_ref() {
        let row = row?;
        if row.cells.iter().any(|c| !c.trim().is_empty()) {
            first = Some(row);
            break;
        }
    }
    let Some(first) = first else {
        return Err(Error::data(crate::t!(
            "import-error-no-rows",
            file = file.as_str(),
            sheet = format!("{:?}", book.sheet)
        )));
    };
    let columns = resolve_columns(org, email, Some(&first), &file)?;
    let by_name = matches!(org, ColumnSpec::Header(_)) || matches!(email, ColumnSpec::Header(_));
    let is_header = by_name || !is_email(first.cell(columns.email));
    let mut scan = Scan {
        header_row: is_header.then_some(first.row),
        columns,
        rows: 0,
        blank: 0,
        duplicates: 0,
        rejects,
        winners: HashMap::new(),
        widest: first.cells.len(),
        email_like: EmailLike::default(),
        header: None,
    };
    scan.header = is_header.then(|| first.clone());
    let first_data = if is_header { None } else { Some(Ok(first)) };
    for row in first_data.into_iter().chain(rows) {
        let row = row?;
        scan.widest = scan.widest.max(row.cells.len());
        scan.email_like.count(&row);
        scan.rows += 1;
        if scan.rows.is_multiple_of(4096) {
            progress.set_position(scan.rows);
        }
        match classify(&row, columns) {
            Classified::Blank => scan.blank += 1,
            Classified::Rejected(reject) => scan.rejects.push(reject)?,
            Classified::Contact { email, .. } => {
                if scan.winners.insert(email, row.row).is_some() {
                    scan.duplicates += 1;
                }
            }
        }
    }
    if scan.rows == scan.blank {
        return Err(Error::data(crate::t!(
            "import-error-no-data",
            file = file.as_str(),
            sheet = format!("{:?}", book.sheet),
            below_header = if is_header { "yes" } else { "no" }
        )));
    }
    Ok(scan)
}

/// What stops an import after the first pass: no data rows, no email
/// column, every row or nearly all rejected.
pub fn check(book: &Workbook, scan: &Scan) -> Result<()> {
    let file = book.path.display().to_string();
    let (columns, widest, email_like) = (scan.columns, scan.widest, &scan.email_like);
    if widest <= columns.email && scan.winners.is_empty() {
        let last = validate::column_letter(widest.saturating_sub(1));
        let err = Error::data(crate::t!(
            "import-error-no-email-column",
            file = file.as_str(),
            sheet = format!("{:?}", book.sheet),
            column = validate::column_letter(columns.email),
            count = widest,
            last = last.as_str()
        ));
        return Err(match email_like.best(columns.email) {
            Some(hint) => err.with_hint(hint),
            None => err.with_hint(crate::t!("import-hint-email-column", last = last.as_str())),
        });
    }
    let data = scan.rows - scan.blank;
    let rejected = scan.rejects.total();
    if scan.winners.is_empty() || (data >= 10 && rejected * 10 >= data * 9) {
        return Err(mostly_rejected(
            &file,
            scan,
            scan.header.as_ref(),
            data,
            rejected,
            email_like,
        ));
    }
    Ok(())
}

/// For each column, how many of the first data rows hold an email.
#[derive(Debug, Default)]
struct EmailLike {
    rows: u64,
    columns: Vec<u64>,
}

impl EmailLike {
    const SAMPLE: u64 = 1000;

    fn count(&mut self, row: &SheetRow) {
        if self.rows >= Self::SAMPLE || row.cells.iter().all(|c| c.trim().is_empty()) {
            return;
        }
        self.rows += 1;
        for (i, cell) in row.cells.iter().enumerate() {
            if is_email(cell) {
                if self.columns.len() <= i {
                    self.columns.resize(i + 1, 0);
                }
                self.columns[i] += 1;
            }
        }
    }

    /// `column C looks like emails: try --email-column C`, when another
    /// column than `used` holds emails in most rows.
    fn best(&self, used: usize) -> Option<String> {
        let (column, hits) = self
            .columns
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != used)
            .max_by_key(|(_, hits)| **hits)?;
        (*hits * 2 > self.rows).then(|| {
            let letter = validate::column_letter(column);
            crate::t!("import-hint-looks-like-emails", letter = letter)
        })
    }
}

/// An import that would reject every row, or nearly all: what the header
/// row said and which column was read, so that the fix is one flag away.
fn mostly_rejected(
    file: &str,
    scan: &Scan,
    header: Option<&SheetRow>,
    data: u64,
    rejected: u64,
    email_like: &EmailLike,
) -> Error {
    let named = |i: usize| -> String {
        match header.map(|h| h.cell(i).trim()).filter(|t| !t.is_empty()) {
            Some(name) => format!("{} ({name:?})", validate::column_letter(i)),
            None => validate::column_letter(i),
        }
    };
    let seen = match header {
        Some(h) => crate::t!(
            "import-seen-header",
            row = h.row.to_string(),
            cells = h
                .cells
                .iter()
                .enumerate()
                .filter(|(_, c)| !c.trim().is_empty())
                .map(|(i, c)| format!("{} {:?}", validate::column_letter(i), c.trim()))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        None => crate::t!("import-seen-no-header"),
    };
    let why = scan
        .rejects
        .kept()
        .first()
        .map(|r| {
            crate::t!(
                "import-first-reason",
                row = r.row.to_string(),
                reason = r.reason.as_str()
            )
        })
        .unwrap_or_default();
    let err = Error::check_failed(crate::t!(
        "import-error-mostly-rejected",
        file = file,
        rejected = rejected,
        data = data,
        seen = seen,
        email = named(scan.columns.email),
        organization = named(scan.columns.organization),
        why = why
    ));
    match email_like.best(scan.columns.email) {
        Some(hint) => err.with_hint(hint),
        None => err.with_hint(crate::t!("import-hint-check-rows")),
    }
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
