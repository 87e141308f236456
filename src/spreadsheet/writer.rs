//! Writing spreadsheets that people open: `.xlsx` (rust_xlsxwriter in its
//! constant-memory mode, so a sheet of a million rows costs what a sheet of
//! ten does) or `.csv`, row by row, to a temporary file renamed into place
//! when complete (a crash never leaves half a file), or CSV on stdout.
//!
//! Every text cell goes through [`neutralize`]: wherever a spreadsheet could
//! start a cell (the start, and after a `,` `;` tab, line break or quote in
//! it), a formula character gets an apostrophe in front, and [`restore`]
//! takes it off again when such a cell is read back, so a file written here
//! reads back unchanged.

use std::borrow::Cow;
use std::io::Write;
use std::path::{Path, PathBuf};

use rust_xlsxwriter::{Format, Workbook};

use crate::error::{Error, Result};
use crate::t;

/// The first characters that make a spreadsheet read a cell as a formula.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// The characters after which a spreadsheet may start a new cell when it
/// reads a CSV file: the separators it may split on (`,`, `;`, tab), the
/// line breaks, and the quote it takes off the front of a cell.
const CELL_BREAK: [char; 6] = [',', ';', '\t', '\r', '\n', '"'];

/// Whether text at the start of a cell reads as a formula once the
/// apostrophes in front of it are taken off.
fn formula_after_apostrophes(rest: &str) -> bool {
    rest.trim_start_matches('\'').starts_with(FORMULA_START)
}

/// A cell that a spreadsheet would run as a formula, written as text: an
/// apostrophe goes in front of the formula character, at the start of the
/// cell and after every [`CELL_BREAK`] in it, so that no cell starts a
/// formula whichever separator the spreadsheet splits the file on
/// (`Acme;=1+1` is written `Acme;'=1+1`). An apostrophe already in such a
/// place gets one more, so that [`restore`] gives back exactly the text.
/// Every cell mailsync writes (CSV, workbook, rejects file) goes through it.
pub fn neutralize(cell: &str) -> Cow<'_, str> {
    // Most cells (an email, a date with its `-`) need nothing: find the
    // first place that does before allocating.
    let Some(first) = cell_starts(cell).find(|&i| formula_after_apostrophes(&cell[i..])) else {
        return Cow::Borrowed(cell);
    };
    let mut out = String::with_capacity(cell.len() + 4);
    out.push_str(&cell[..first]);
    let mut at_start = true;
    for (i, c) in cell[first..].char_indices() {
        if at_start && formula_after_apostrophes(&cell[first + i..]) {
            out.push('\'');
        }
        out.push(c);
        at_start = CELL_BREAK.contains(&c);
    }
    Cow::Owned(out)
}

/// The inverse of [`neutralize`]: at the start of the cell and after every
/// [`CELL_BREAK`], one apostrophe is taken off the front of apostrophes
/// followed by a formula character (`'=x` reads `=x`, `Acme;'=1` reads
/// `Acme;=1`). Any other apostrophe is kept.
pub fn restore(cell: &str) -> Cow<'_, str> {
    let written =
        |i: usize| cell[i..].starts_with('\'') && formula_after_apostrophes(&cell[i + 1..]);
    let Some(first) = cell_starts(cell).find(|&i| written(i)) else {
        return Cow::Borrowed(cell);
    };
    let mut out = String::with_capacity(cell.len());
    out.push_str(&cell[..first]);
    let mut at_start = true;
    for (i, c) in cell[first..].char_indices() {
        if at_start && written(first + i) {
            at_start = false;
            continue;
        }
        out.push(c);
        at_start = CELL_BREAK.contains(&c);
    }
    Cow::Owned(out)
}

/// Where a spreadsheet may start a cell inside `cell`: its start and the
/// byte after each [`CELL_BREAK`] (all one byte long).
fn cell_starts(cell: &str) -> impl Iterator<Item = usize> + '_ {
    std::iter::once(0).chain(
        cell.char_indices()
            .filter(|(_, c)| CELL_BREAK.contains(c))
            .map(|(i, _)| i + 1),
    )
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
                        Cell::Text(t) if bold => ws.write_string_with_format(
                            row,
                            col,
                            neutralize(t).as_ref(),
                            &self.bold,
                        ),
                        Cell::Text(t) => ws.write_string(row, col, neutralize(t).as_ref()),
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
                        Cell::Text(t) => neutralize(t).into_owned(),
                        // A negative number would start with `-`.
                        Cell::Number(n) => neutralize(&n.to_string()).into_owned(),
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
            ("Acme;=1+1", "Acme;'=1+1"),
            ("a,-1\t+2\r@3\n=4\"=5", "a,'-1\t'+2\r'@3\n'=4\"'=5"),
            ("\t=x", "'\t'=x"),
            ("'=x", "''=x"),
            ("Acme;'=x", "Acme;''=x"),
            ("a=b;c-d", "a=b;c-d"),
            ("'quoted'", "'quoted'"),
        ] {
            assert_eq!(neutralize(cell), written, "{cell:?}");
            assert_eq!(restore(&neutralize(cell)), cell, "{cell:?}");
        }
        // Cells with nothing to do are not copied.
        for plain in [
            "jean-paul@acme.example",
            "2026-12-05T18:43:26+00:00",
            "a=b;c",
        ] {
            assert!(matches!(neutralize(plain), Cow::Borrowed(_)), "{plain}");
            assert!(matches!(restore(plain), Cow::Borrowed(_)), "{plain}");
        }
        // Only what neutralize writes is undone.
        assert_eq!(restore("'quoted'"), "'quoted'");
        assert_eq!(restore("'"), "'");
        assert_eq!(restore("a'=b"), "a'=b");
    }

    /// Every string of up to five characters over the characters that
    /// matter comes back from `restore(neutralize(_))` as it was.
    #[test]
    fn the_round_trip_is_exact() {
        const ALPHABET: [char; 11] = [',', ';', '\t', '\r', '\n', '"', '\'', '=', '-', '@', 'a'];
        let mut cells = vec![String::new()];
        for _ in 0..5 {
            let longer: Vec<String> = cells
                .iter()
                .filter(|c| c.chars().count() == cells.last().unwrap().chars().count())
                .flat_map(|c| ALPHABET.iter().map(move |a| format!("{c}{a}")))
                .collect();
            cells.extend(longer);
        }
        assert!(cells.len() > 160_000);
        for cell in &cells {
            assert_eq!(restore(&neutralize(cell)), cell.as_str(), "{cell:?}");
        }
    }

    /// A CSV file written here, read by splitting on `,`, `;` or tab: no
    /// field starts a formula, and the `,` reading gives the cells back.
    #[test]
    fn no_csv_field_starts_a_formula_whatever_the_separator() {
        let hostile = [
            "Acme;=1+1",
            "Acme\t=1+1",
            "Acme,=1+1",
            "x;\"=1\"",
            "x;\"\"=1",
            "two\n=lines",
            "cr\r+1",
            "=a;-b,+c\t@d",
            ";;=1",
            "'=1;'-2",
            "\"=1\";@2",
            "a@b.example;=cmd|' /C calc'!A0",
        ];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("hostile.csv");
        let mut w = SheetWriter::create(&path).unwrap();
        let sheet = w.add_sheet("x", &[]).unwrap();
        w.header(sheet, &["a", "b", "c"]).unwrap();
        for h in hostile {
            w.row(sheet, &[Cell::Text(h), Cell::Text(h), Cell::Number(-2.5)])
                .unwrap();
        }
        w.finish().unwrap();
        let bytes = std::fs::read(&path).unwrap();
        for separator in [b',', b';', b'\t'] {
            let mut reader = csv::ReaderBuilder::new()
                .delimiter(separator)
                .has_headers(false)
                .flexible(true)
                .from_reader(bytes.as_slice());
            for record in reader.records() {
                for field in record.unwrap().iter() {
                    assert!(
                        !field.starts_with(FORMULA_START),
                        "split on {:?}: {field:?}",
                        separator as char
                    );
                }
            }
        }
        let mut reader = csv::Reader::from_reader(bytes.as_slice());
        for (record, h) in reader.records().zip(hostile) {
            let record = record.unwrap();
            assert_eq!(restore(&record[0]), h);
            assert_eq!(restore(&record[1]), h);
            assert_eq!(restore(&record[2]), "-2.5");
        }
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
