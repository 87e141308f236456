//! The first pass of `mailsync import`: every row of the sheet read once,
//! classified (header, blank, rejected, contact), the winning row of each
//! email found, and the checks that stop an import before anything is sent.

use std::collections::HashMap;

use indicatif::ProgressBar;

use super::rejects;
use super::validate::{classify, is_email, resolve_columns, Classified, ColumnSpec, Columns};
use crate::error::{Error, Result};
use crate::spreadsheet::format::column_letter;
use crate::spreadsheet::reader::{SheetRow, Workbook};

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
        // Ctrl-C (or SIGTERM) while reading: nothing was sent yet.
        if crate::interrupt::requested() {
            return Err(Error::new(
                crate::error::ErrorKind::Interrupted,
                crate::t!("import-error-interrupted-reading"),
            ));
        }
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
        let last = column_letter(widest.saturating_sub(1));
        let err = Error::data(crate::t!(
            "import-error-no-email-column",
            file = file.as_str(),
            sheet = format!("{:?}", book.sheet),
            column = column_letter(columns.email),
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
            let letter = column_letter(column);
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
            Some(name) => format!("{} ({name:?})", column_letter(i)),
            None => column_letter(i),
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
                .map(|(i, c)| format!("{} {:?}", column_letter(i), c.trim()))
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
