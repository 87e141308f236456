//! Writing spreadsheets that people open: `.xlsx` (rust_xlsxwriter in its
//! constant-memory mode, so a sheet of a million rows costs what a sheet of
//! ten does) or `.csv`, row by row, to a temporary file renamed into place
//! when complete (a crash never leaves half a file), or CSV on stdout.
//!
//! Every text cell goes through [`neutralize`]: a cell that a spreadsheet
//! would run as a formula is written with a leading apostrophe, and
//! [`restore`] takes it off again when such a cell is read back, so a file
//! written here reads back unchanged.

use std::io::Write;
use std::path::{Path, PathBuf};

use rust_xlsxwriter::{Format, Workbook};

use crate::error::{Error, Result};
use crate::t;

/// The first characters that make a spreadsheet read a cell as a formula.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A cell that a spreadsheet would run as a formula, written as text.
pub fn neutralize(cell: &str) -> String {
    if cell.starts_with(FORMULA_START) {
        format!("'{cell}")
    } else {
        cell.to_string()
    }
}

/// The inverse of [`neutralize`]: `'=x` is read as `=x`. Any other leading
/// apostrophe is kept.
pub fn restore(cell: &str) -> &str {
    match cell.strip_prefix('\'') {
        Some(rest) if rest.starts_with(FORMULA_START) => rest,
        _ => cell,
    }
}

/// One cell to write.
#[derive(Debug, Clone, Copy)]
pub enum Cell<'a> {
    Text(&'a str),
    Number(f64),
    Empty,
}

/// The file types mailsync writes, chosen by the file's extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Xlsx,
    Csv,
}

impl Kind {
    /// `-` is CSV on stdout; otherwise `.xlsx` or `.csv`.
    pub fn of(path: &Path) -> Result<Self> {
        if path.as_os_str() == "-" {
            return Ok(Kind::Csv);
        }
        match super::format::extension(path).as_str() {
            "xlsx" => Ok(Kind::Xlsx),
            "csv" => Ok(Kind::Csv),
            _ => Err(Error::usage(t!(
                "sheet-error-file-type",
                file = path.display().to_string()
            ))),
        }
    }
}

enum Sink {
    Xlsx {
        book: Box<Workbook>,
        rows: Vec<u32>,
    },
    Csv {
        writer: Box<csv::Writer<Box<dyn Write>>>,
        sheets: usize,
    },
}

/// A spreadsheet being written: [`SheetWriter::add_sheet`], rows in order,
/// then [`SheetWriter::finish`]. Dropped unfinished, nothing is left behind.
pub struct SheetWriter {
    sink: Sink,
    /// The destination and its temporary file; `None` for stdout.
    file: Option<(PathBuf, tempfile::NamedTempFile)>,
    bold: Format,
}

impl SheetWriter {
    /// Starts `path` (`-`: CSV on stdout). Fails at once when the file's
    /// folder cannot be written, before any data is read.
    pub fn create(path: &Path) -> Result<Self> {
        let kind = Kind::of(path)?;
        let file = if path.as_os_str() == "-" {
            None
        } else {
            let dir = path
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            let tmp = tempfile::Builder::new()
                .prefix(".mailsync-")
                .suffix(".part")
                .tempfile_in(dir)
                .map_err(|e| write_error(path, &e))?;
            Some((path.to_path_buf(), tmp))
        };
        let sink = match kind {
            Kind::Xlsx => Sink::Xlsx {
                book: Box::new(Workbook::new()),
                rows: Vec::new(),
            },
            Kind::Csv => {
                let out: Box<dyn Write> = match &file {
                    None => Box::new(std::io::BufWriter::new(std::io::stdout())),
                    Some((p, tmp)) => Box::new(std::io::BufWriter::new(
                        tmp.reopen().map_err(|e| write_error(p, &e))?,
                    )),
                };
                Sink::Csv {
                    writer: Box::new(csv::Writer::from_writer(out)),
                    sheets: 0,
                }
            }
        };
        Ok(Self {
            sink,
            file,
            bold: Format::new().set_bold(),
        })
    }

    fn path_display(&self) -> String {
        self.file
            .as_ref()
            .map(|(p, _)| p.display().to_string())
            .unwrap_or_else(|| "stdout".into())
    }

    /// Adds a sheet named `name` with column `widths` (characters); returns
    /// its index. A CSV file has one sheet.
    pub fn add_sheet(&mut self, name: &str, widths: &[f64]) -> Result<usize> {
        let shown = self.path_display();
        match &mut self.sink {
            Sink::Xlsx { book, rows } => {
                let sheet = book.add_worksheet_with_constant_memory();
                sheet
                    .set_name(name)
                    .map_err(|e| Error::failure(format!("{shown}: sheet {name:?}: {e}")))?;
                for (i, w) in widths.iter().enumerate() {
                    sheet
                        .set_column_width(i as u16, *w)
                        .map_err(|e| Error::failure(format!("{shown}: {e}")))?;
                }
                rows.push(0);
                Ok(rows.len() - 1)
            }
            Sink::Csv { sheets, .. } => {
                if *sheets > 0 {
                    return Err(Error::usage(t!(
                        "sheet-error-csv-one-sheet",
                        file = shown.as_str()
                    )));
                }
                *sheets += 1;
                Ok(0)
            }
        }
    }

    /// A header row: bold in a workbook.
    pub fn header(&mut self, sheet: usize, names: &[&str]) -> Result<()> {
        let cells: Vec<Cell> = names.iter().map(|n| Cell::Text(n)).collect();
        self.write(sheet, &cells, true)
    }

    /// The next row of `sheet`.
    pub fn row(&mut self, sheet: usize, cells: &[Cell]) -> Result<()> {
        self.write(sheet, cells, false)
    }

    fn write(&mut self, sheet: usize, cells: &[Cell], bold: bool) -> Result<()> {
        let shown = self.path_display();
        let fail = |e: &dyn std::fmt::Display| writing_error(&shown, e);
        match &mut self.sink {
            Sink::Xlsx { book, rows } => {
                let row = rows[sheet];
                if row >= 1_048_576 {
                    return Err(Error::data(t!(
                        "sheet-error-too-many-rows",
                        file = shown.as_str()
                    ))
                    .with_hint(t!("sheet-hint-csv")));
                }
                let ws = book.worksheet_from_index(sheet).map_err(|e| fail(&e))?;
                for (col, cell) in cells.iter().enumerate() {
                    let col = col as u16;
                    let done = match cell {
                        Cell::Text(t) if bold => {
                            ws.write_string_with_format(row, col, neutralize(t), &self.bold)
                        }
                        Cell::Text(t) => ws.write_string(row, col, neutralize(t)),
                        Cell::Number(n) => ws.write_number(row, col, *n),
                        Cell::Empty => continue,
                    };
                    done.map_err(|e| fail(&e))?;
                }
                rows[sheet] = row + 1;
            }
            Sink::Csv { writer, .. } => {
                let record: Vec<String> = cells
                    .iter()
                    .map(|c| match c {
                        Cell::Text(t) => neutralize(t),
                        Cell::Number(n) => n.to_string(),
                        Cell::Empty => String::new(),
                    })
                    .collect();
                writer.write_record(&record).map_err(|e| fail(&e))?;
            }
        }
        Ok(())
    }

    /// Completes the file: saves the workbook or flushes the CSV, then
    /// renames the temporary file into place.
    pub fn finish(self) -> Result<()> {
        let shown = self.path_display();
        let fail = |e: &dyn std::fmt::Display| writing_error(&shown, e);
        match self.sink {
            Sink::Xlsx { mut book, .. } => {
                let Some((_, tmp)) = &self.file else {
                    return Err(Error::usage(t!("sheet-error-stdout")));
                };
                let file = tmp.reopen().map_err(|e| fail(&e))?;
                book.save_to_writer(std::io::BufWriter::new(file))
                    .map_err(|e| fail(&e))?;
            }
            Sink::Csv { mut writer, .. } => {
                writer.flush().map_err(|e| fail(&e))?;
                // The BufWriter inside flushes on drop; surface its errors here.
                writer
                    .into_inner()
                    .map_err(|e| fail(&e.error().to_string()))?
                    .flush()
                    .map_err(|e| fail(&e))?;
            }
        }
        if let Some((path, tmp)) = self.file {
            tmp.as_file()
                .sync_all()
                .map_err(|e| write_error(&path, &e))?;
            tmp.persist(&path)
                .map_err(|e| write_error(&path, &e.error))?;
        }
        Ok(())
    }
}

/// A failure while writing the sheet `shown` (its path, or stdout).
fn writing_error(shown: &str, e: &dyn std::fmt::Display) -> Error {
    Error::failure(t!(
        "sheet-error-writing",
        file = shown,
        reason = e.to_string()
    ))
}

fn write_error(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::failure(t!(
        "file-error-write-file",
        file = path.display().to_string(),
        reason = e.to_string()
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_neutralised_and_restored() {
        for (cell, written) in [
            ("=HYPERLINK(\"x\")", "'=HYPERLINK(\"x\")"),
            ("+33 1", "'+33 1"),
            ("-1", "'-1"),
            ("@SUM(A1)", "'@SUM(A1)"),
            ("Acme", "Acme"),
        ] {
            assert_eq!(neutralize(cell), written);
            assert_eq!(restore(&neutralize(cell)), cell);
        }
        // Only what neutralize wrote is undone.
        assert_eq!(restore("'quoted'"), "'quoted'");
        assert_eq!(restore("'"), "'");
    }

    #[test]
    fn kinds_follow_the_extension() {
        assert_eq!(Kind::of(Path::new("-")).unwrap(), Kind::Csv);
        assert_eq!(Kind::of(Path::new("a.XLSX")).unwrap(), Kind::Xlsx);
        assert_eq!(Kind::of(Path::new("a.csv")).unwrap(), Kind::Csv);
        assert_eq!(
            Kind::of(Path::new("a.ods")).unwrap_err().kind().exit_code(),
            2
        );
    }
}
