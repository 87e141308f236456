//! Reading a sheet as a stream of rows: `.xlsx`/`.xlsm` cell by cell
//! (calamine's streaming cell reader, so memory does not grow with the
//! sheet), `.xlsb`/`.xls`/`.ods` through calamine's ranges, `.csv`/`.tsv`
//! with the `csv` crate. Every cell arrives as the text a person sees in the
//! sheet.
//!
//! A pass over the rows runs on its own thread and hands rows over a bounded
//! channel; [`Workbook::rows`] starts a fresh pass each time it is called.
//!
//! Before any library reads a file, [`limits::check_file`] bounds
//! what it may ask for; while rows stream, the cells of the sheet and the
//! length of each cell are held to the same [`Limits`].

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};

use calamine::{open_workbook, Data, Reader, Sheets, Xlsb, Xlsx};

use super::format::{column_letter, Format};
use super::limits::{self, grouped, Limit, Limits};
use crate::error::{Error, Result};
use crate::t;

/// Only the first columns are kept: column letters go up to `ZZZ` in a
/// sheet, but a contact list that needs more than this is not one.
pub const MAX_COLUMNS: usize = 256;

/// One sheet row: its number as Excel shows it (1-based) and its cells.
#[derive(Debug, Clone, PartialEq)]
pub struct SheetRow {
    pub row: u32,
    pub cells: Vec<String>,
}

impl SheetRow {
    pub fn cell(&self, column: usize) -> &str {
        self.cells.get(column).map(String::as_str).unwrap_or("")
    }
}

/// An opened file and the sheet to read.
#[derive(Debug, Clone)]
pub struct Workbook {
    pub path: PathBuf,
    pub format: Format,
    pub sheet: String,
    pub sheets: Vec<String>,
    pub limits: Limits,
    /// For CSV: the encoding `--encoding` forced (else detected).
    pub encoding: Option<&'static encoding_rs::Encoding>,
    /// For `.xlsb`: the copy with short cell records in full form, made once
    /// when opened and read by every pass (`None`: the file needs none).
    full_form: Option<std::sync::Arc<tempfile::NamedTempFile>>,
}

impl Workbook {
    /// [`Workbook::open_with`] the default limits.
    pub fn open(path: &Path, sheet: Option<&str>) -> Result<Self> {
        Self::open_with(path, sheet, Limits::default())
    }

    /// Opens `path`, checks that it is the workbook its name says and stays
    /// within `limits`, and picks the sheet (`sheet`, or the first one).
    pub fn open_with(path: &Path, sheet: Option<&str>, limits: Limits) -> Result<Self> {
        let format = Format::of(path)?;
        let meta = std::fs::metadata(path).map_err(|e| file_error(path, &e))?;
        if meta.is_dir() {
            return Err(Error::data(t!(
                "import-error-directory",
                file = path.display().to_string()
            )));
        }
        File::open(path).map_err(|e| file_error(path, &e))?;
        if meta.len() == 0 {
            return Err(Error::data(t!(
                "import-error-empty-file",
                file = path.display().to_string()
            )));
        }
        limits::check_file(path, format, &limits)?;
        let sheets = match format {
            Format::Csv => vec![csv_sheet_name(path)],
            format => open_sheets(path, format)?.sheet_names(),
        };
        if sheets.is_empty() {
            return Err(Error::data(t!(
                "import-error-no-sheet",
                file = path.display().to_string()
            )));
        }
        let sheet = match sheet {
            None => sheets[0].clone(),
            Some(name) => sheets
                .iter()
                .find(|s| s.as_str() == name)
                .or_else(|| sheets.iter().find(|s| s.eq_ignore_ascii_case(name)))
                .cloned()
                .ok_or_else(|| {
                    Error::usage(t!(
                        "import-error-sheet-not-found",
                        file = path.display().to_string(),
                        sheet = format!("{name:?}"),
                        sheets = sheets
                            .iter()
                            .map(|s| format!("{s:?}"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ))
                })?,
        };
        Ok(Self {
            path: path.to_path_buf(),
            format,
            sheet,
            sheets,
            limits,
            encoding: None,
            full_form: match format {
                Format::Xlsb => super::xlsb::full_form_copy(path).map(std::sync::Arc::new),
                _ => None,
            },
        })
    }

    /// Reads a CSV file as `label` (`--encoding`) instead of detecting it.
    pub fn with_encoding(mut self, label: Option<&str>) -> Result<Self> {
        if let Some(label) = label {
            self.encoding = Some(super::encoding::parse(label)?);
        }
        Ok(self)
    }

    /// A fresh pass over the sheet's rows, in order. Empty rows inside the
    /// sheet arrive with no cells, so that they can be counted as blank.
    pub fn rows(&self) -> RowStream {
        let (tx, rx) = sync_channel::<Result<SheetRow>>(4096);
        let book = self.clone();
        let thread = std::thread::Builder::new()
            .name("sheet-reader".into())
            .spawn(move || {
                let mut next_row = 1u32;
                let mut emit = |row: SheetRow| -> bool {
                    // Rows the file leaves out are empty rows.
                    while next_row < row.row {
                        let gap = SheetRow {
                            row: next_row,
                            cells: Vec::new(),
                        };
                        if tx.send(Ok(gap)).is_err() {
                            return false;
                        }
                        next_row += 1;
                    }
                    next_row = row.row + 1;
                    tx.send(Ok(row)).is_ok()
                };
                let outcome = match book.format {
                    Format::Xlsx | Format::Xlsb => stream_cells(&book, &mut emit),
                    Format::Csv => stream_csv(&book, &mut emit),
                    _ => stream_range(&book, &mut emit),
                };
                if let Err(e) = outcome {
                    let _ = tx.send(Err(e));
                }
            })
            .ok();
        RowStream {
            rx,
            _thread: thread,
        }
    }
}

/// The rows of one pass; see [`Workbook::rows`].
pub struct RowStream {
    rx: Receiver<Result<SheetRow>>,
    _thread: Option<std::thread::JoinHandle<()>>,
}

impl Iterator for RowStream {
    type Item = Result<SheetRow>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

fn file_error(path: &Path, e: &std::io::Error) -> Error {
    let reason = match e.kind() {
        std::io::ErrorKind::NotFound => t!("file-not-found"),
        std::io::ErrorKind::PermissionDenied => t!("file-permission-denied"),
        _ => e.to_string(),
    };
    Error::data(t!(
        "file-error-read-file",
        file = path.display().to_string(),
        reason = reason
    ))
}

fn csv_sheet_name(path: &Path) -> String {
    path.file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or("csv")
        .to_string()
}

thread_local! {
    /// Set while the spreadsheet library runs on this thread.
    static IN_LIBRARY: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f`, the spreadsheet library at work, catching its panic: a bad
/// file must be an error that names it, never a crash, and the panic's own
/// message (a line of the library's source) is not for the user, so the
/// panic hook stays silent for it. Panics anywhere else are reported as
/// usual.
fn guarded<T>(f: impl FnOnce() -> T) -> std::thread::Result<T> {
    static QUIET_HOOK: std::sync::Once = std::sync::Once::new();
    QUIET_HOOK.call_once(|| {
        let report = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !IN_LIBRARY.with(|c| c.get()) {
                report(info);
            }
        }));
    });
    IN_LIBRARY.with(|c| c.set(true));
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    IN_LIBRARY.with(|c| c.set(false));
    outcome
}

/// Opens `path` as `format`, the format [`limits::check_file`]
/// checked it as: never as whatever calamine would guess from its content
/// (a zip named `.XLS`, an OLE file named `.ods`), which no check has seen.
fn open_sheets(path: &Path, format: Format) -> Result<Sheets<BufReader<File>>> {
    fn open<R: Reader<BufReader<File>>>(
        path: &Path,
        sheets: fn(R) -> Sheets<BufReader<File>>,
    ) -> std::result::Result<Sheets<BufReader<File>>, String>
    where
        R::Error: std::fmt::Display,
    {
        open_workbook::<R, _>(path)
            .map(sheets)
            .map_err(|e| e.to_string())
    }
    // calamine can panic on some malformed files; a bad file must be an
    // error that names it, never a crash.
    let opened = guarded(|| match format {
        Format::Xlsx => open(path, Sheets::Xlsx),
        Format::Xlsb => open(path, Sheets::Xlsb),
        Format::Xls => open(path, Sheets::Xls),
        Format::Ods => open(path, Sheets::Ods),
        Format::Csv => Err("not a workbook".to_string()),
    });
    match opened {
        Ok(Ok(sheets)) => Ok(sheets),
        Ok(Err(e)) => Err(workbook_error(path, &e)),
        Err(_) => Err(workbook_error(path, &t!("import-malformed-workbook"))),
    }
}

/// A message for a workbook calamine refused, saying what it most likely is.
fn workbook_error(path: &Path, detail: &str) -> Error {
    let lower = detail.to_ascii_lowercase();
    let file = path.display().to_string();
    Error::data(if lower.contains("password") || lower.contains("encrypt") {
        t!("import-error-protected", file = file)
    } else if lower.contains("zip") || lower.contains("invalid") && lower.contains("archive") {
        t!("import-error-corrupt", file = file, detail = detail)
    } else {
        t!("import-error-unreadable", file = file, detail = detail)
    })
}

/// Holds a sheet to [`Limits`] as its cells arrive.
struct Guard<'a> {
    book: &'a Workbook,
    cells: u64,
}

impl<'a> Guard<'a> {
    fn new(book: &'a Workbook) -> Self {
        Self { book, cells: 0 }
    }

    /// Counts `n` more cells of the sheet.
    fn count(&mut self, n: u64) -> Result<()> {
        self.cells = self.cells.saturating_add(n);
        let max = self.book.limits.cells_for(self.book.format);
        if self.cells > max {
            return Err(Limit::Cells.exceeded(
                &self.book.path,
                t!(
                    "limit-sheet-cells",
                    sheet = format!("{:?}", self.book.sheet),
                    limit = grouped(max)
                ),
            ));
        }
        Ok(())
    }

    /// A cell's text, refused when longer than the limit.
    fn text(&self, text: String, row: u32, column: usize) -> Result<String> {
        let max = self.book.limits.max_cell_length;
        // Bytes are at least characters: most cells need no count.
        if text.len() as u64 > max {
            let chars = text.chars().count() as u64;
            if chars > max {
                return Err(Limit::CellLength.exceeded(
                    &self.book.path,
                    t!(
                        "limit-cell-length",
                        cell = format!("{}{row}", column_letter(column)),
                        sheet = format!("{:?}", self.book.sheet),
                        count = grouped(chars),
                        limit = grouped(max)
                    ),
                ));
            }
        }
        Ok(text)
    }
}

/// One cell of a streamed sheet: 0-based row and column, and its text when
/// the column is one that is kept.
type StreamedCell = (u32, u32, Option<String>);

/// `.xlsx` and `.xlsb`, cell by cell, with calamine's streaming readers.
fn stream_cells(book: &Workbook, emit: &mut dyn FnMut(SheetRow) -> bool) -> Result<()> {
    let fail = |e: &dyn std::fmt::Display| workbook_error(&book.path, &e.to_string());
    let keep = |column: u32| (column as usize) < MAX_COLUMNS;
    // The two readers share no trait: the same cell loop over either.
    macro_rules! stream {
        ($workbook:expr) => {{
            let mut workbook = $workbook;
            let mut cells = workbook
                .worksheet_cells_reader(&book.sheet)
                .map_err(|e| fail(&e))?;
            rows_of_cells(book, emit, &mut || match cells.next_cell() {
                Ok(Some(cell)) => {
                    let (row, column) = cell.get_position();
                    let text = keep(column).then(|| display(Data::from(cell.get_value().clone())));
                    Ok(Some((row, column, text)))
                }
                Ok(None) => Ok(None),
                Err(e) => Err(fail(&e)),
            })
        }};
    }
    let run = || -> Result<()> {
        match book.format {
            Format::Xlsb => {
                // Short cell records, which calamine skips, in full form.
                let path = book
                    .full_form
                    .as_ref()
                    .map_or(book.path.as_path(), |c| c.path());
                stream!(open_workbook::<Xlsb<BufReader<File>>, _>(path)
                    .map_err(|e: calamine::XlsbError| fail(&e))?)
            }
            _ => stream!(open_workbook::<Xlsx<BufReader<File>>, _>(&book.path)
                .map_err(|e: calamine::XlsxError| fail(&e))?),
        }
    };
    match guarded(run) {
        Ok(outcome) => outcome,
        Err(_) => Err(workbook_error(&book.path, &t!("import-malformed-workbook"))),
    }
}

/// Gathers streamed cells into rows.
fn rows_of_cells(
    book: &Workbook,
    emit: &mut dyn FnMut(SheetRow) -> bool,
    next_cell: &mut dyn FnMut() -> Result<Option<StreamedCell>>,
) -> Result<()> {
    let mut guard = Guard::new(book);
    let mut current: Option<SheetRow> = None;
    while let Some((row, column, text)) = next_cell()? {
        guard.count(1)?;
        let column = column as usize;
        let row = row.saturating_add(1);
        if current.as_ref().is_some_and(|c| c.row != row) {
            if let Some(done) = current.take() {
                if !emit(done) {
                    return Ok(());
                }
            }
        }
        let Some(text) = text else {
            continue;
        };
        let text = guard.text(text, row, column)?;
        let entry = current.get_or_insert_with(|| SheetRow {
            row,
            cells: Vec::new(),
        });
        if entry.cells.len() <= column {
            entry.cells.resize(column + 1, String::new());
        }
        entry.cells[column] = text;
    }
    if let Some(done) = current {
        emit(done);
    }
    Ok(())
}

fn stream_range(book: &Workbook, emit: &mut dyn FnMut(SheetRow) -> bool) -> Result<()> {
    let run = || -> Result<()> {
        let mut sheets = open_sheets(&book.path, book.format)?;
        let range = sheets
            .worksheet_range(&book.sheet)
            .map_err(|e| workbook_error(&book.path, &e.to_string()))?;
        let Some((first_row, first_col)) = range.start() else {
            return Ok(());
        };
        let mut guard = Guard::new(book);
        guard.count(range.get_size().0.saturating_mul(range.get_size().1) as u64)?;
        for (i, row) in range.rows().enumerate() {
            let number = first_row + i as u32 + 1;
            let mut cells = vec![String::new(); first_col as usize];
            for value in row {
                let column = cells.len();
                if column >= MAX_COLUMNS {
                    break;
                }
                cells.push(guard.text(display(value.clone()), number, column)?);
            }
            while cells.last().is_some_and(String::is_empty) {
                cells.pop();
            }
            if !emit(SheetRow { row: number, cells }) {
                break;
            }
        }
        Ok(())
    };
    match guarded(run) {
        Ok(outcome) => outcome,
        Err(_) => Err(workbook_error(&book.path, &t!("import-malformed-workbook"))),
    }
}

fn stream_csv(book: &Workbook, emit: &mut dyn FnMut(SheetRow) -> bool) -> Result<()> {
    let (encoding, bom) = super::encoding::detect(&book.path, book.encoding)?;
    let mut text = super::encoding::utf8_reader(&book.path, encoding, bom)?;
    // Spreadsheets saved as CSV in much of Europe separate with `;`.
    let mut head = Vec::with_capacity(8192);
    text.by_ref()
        .take(8192)
        .read_to_end(&mut head)
        .map_err(|e| file_error(&book.path, &e))?;
    let first_line = head.split(|b| *b == b'\n').next().unwrap_or(&[]);
    let count = |c: u8| first_line.iter().filter(|b| **b == c).count();
    let delimiter = if tab_separated(&book.path) {
        // A name that says tabs: a comma in a cell cannot outvote them.
        b'\t'
    } else {
        [b',', b';', b'\t']
            .into_iter()
            .max_by_key(|c| count(*c))
            .filter(|c| count(*c) > 0)
            .unwrap_or(b',')
    };
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .delimiter(delimiter)
        .from_reader(BufReader::new(std::io::Cursor::new(head).chain(text)));
    let mut record = csv::ByteRecord::new();
    let mut number = 0u32;
    let mut guard = Guard::new(book);
    loop {
        match reader.read_byte_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {}
            Err(e) => {
                return Err(Error::data(t!(
                    "import-error-csv",
                    file = book.path.display().to_string(),
                    line = (number + 1).to_string(),
                    reason = e.to_string()
                )))
            }
        }
        number += 1;
        guard.count(record.len() as u64)?;
        let mut cells = record
            .iter()
            .take(MAX_COLUMNS)
            .enumerate()
            .map(|(column, field)| {
                let text = super::encoding::cell_text(field, number, encoding, &book.path)?;
                guard.text(text, number, column)
            })
            .collect::<Result<Vec<String>>>()?;
        while cells.last().is_some_and(|c| c.trim().is_empty()) {
            cells.pop();
        }
        if !emit(SheetRow { row: number, cells }) {
            break;
        }
    }
    Ok(())
}

/// `.tsv` and `.tab`: tab-separated values, whatever the first line holds.
fn tab_separated(path: &Path) -> bool {
    path.extension()
        .and_then(|e| e.to_str())
        .is_some_and(|e| e.eq_ignore_ascii_case("tsv") || e.eq_ignore_ascii_case("tab"))
}

/// A cell as a person sees it: `1234`, not `1234.0`; dates as `2024-03-31`.
/// (The streaming reader's `DataRef` comes as a `Data`: the one copy of its
/// text either way.)
fn display(value: Data) -> String {
    match value {
        Data::Empty => String::new(),
        Data::String(s) | Data::DateTimeIso(s) | Data::DurationIso(s) => s,
        Data::Int(i) => i.to_string(),
        Data::Float(f) => display_float(f),
        Data::Bool(b) => display_bool(b),
        Data::DateTime(d) => display_datetime(&d),
        Data::Error(e) => e.to_string(),
    }
}

fn display_bool(b: bool) -> String {
    if b { "TRUE" } else { "FALSE" }.to_string()
}

pub(crate) fn display_float(f: f64) -> String {
    if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        // Shortest representation that reads back the same, as a sheet shows it.
        let text = format!("{f}");
        text.strip_suffix(".0").map(str::to_string).unwrap_or(text)
    }
}

fn display_datetime(d: &calamine::ExcelDateTime) -> String {
    if d.is_duration() {
        return display_float(d.as_f64());
    }
    match d.as_datetime() {
        // `2024-03-31 00:00:00` is a date: show it as one.
        Some(dt) => {
            let text = dt.to_string();
            match text.strip_suffix(" 00:00:00") {
                Some(date) => date.to_string(),
                None => text,
            }
        }
        None => display_float(d.as_f64()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_a_person_sees_them() {
        assert_eq!(display_float(1234.0), "1234");
        assert_eq!(display_float(12.5), "12.5");
        assert_eq!(display_float(-3.0), "-3");
        assert_eq!(display_float(0.1 + 0.2), "0.30000000000000004");
    }

    #[test]
    fn a_tsv_is_split_at_tabs_whatever_its_first_line_holds() {
        let dir = tempfile::tempdir().unwrap();
        let text = "Dupont, Martin, associés\tcontact@dupont.fr\nA, B, C\tb@x.fr\n";
        for (name, cells) in [
            (
                "list.tsv",
                vec!["Dupont, Martin, associés", "contact@dupont.fr"],
            ),
            // The same text as .csv: more commas than tabs on the first line.
            (
                "list.csv",
                vec!["Dupont", " Martin", " associés\tcontact@dupont.fr"],
            ),
        ] {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            let book = Workbook::open(&path, None).unwrap();
            let first = book.rows().next().unwrap().unwrap();
            assert_eq!(first.cells, cells, "{name}");
        }
    }
}
