//! Limits that keep any file, however it was made, within bounded memory
//! and time, checked before the spreadsheet library reads it.
//!
//! The readers trust what a file declares: calamine reserves memory for the
//! number of shared strings an `.xlsx` announces, expands every repeated row
//! and column of an `.ods` into memory, and reserves an `.xls` sheet's
//! declared dimensions. A small hostile file can therefore ask for gigabytes.
//! [`check_file`] reads the archive first, with every read bounded: each
//! entry's declared and actual decompressed size, the shared-strings counts,
//! the cells an `.ods` sheet expands to, the dimensions and cell positions
//! of an `.xls` sheet. The reader then enforces the cells per sheet and the
//! length of a cell as rows stream.
//!
//! Each limit fails with an error naming the file and the limit (exit 1,
//! nothing written) and says how to raise it for a genuine huge file.
//!
//! Here: the limits and what they share; one module a format for what it
//! declares (`xlsx`, `xlsb`, `ods`, `xls`). A CSV file is read as a stream,
//! its cells and cell lengths checked by the reader as rows arrive.

mod ods;
mod xls;
mod xlsb;
mod xlsx;

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use quick_xml::events::BytesStart;

use super::format::Format;
use crate::error::{Error, Result};
use crate::i18n::Lang;
use crate::t;

/// The bounds an import works within. `Default` is what a user gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Decompressed bytes of one entry of an `.xlsx`/`.xlsb`/`.ods` archive.
    pub max_entry_size: u64,
    /// Shared strings of an `.xlsx`/`.xlsb`, declared or present.
    pub max_shared_strings: u64,
    /// Cells of one sheet, counting the cells a repeated row or column of an
    /// `.ods` stands for, and the whole rectangle of an `.xls` sheet. `None`:
    /// [`DEFAULT_MAX_CELLS`], or [`DEFAULT_MAX_CELLS_IN_MEMORY`] for the
    /// formats that are held in memory whole.
    pub max_cells: Option<u64>,
    /// Characters in one cell.
    pub max_cell_length: u64,
}

pub const DEFAULT_MAX_ENTRY_SIZE: u64 = 256 << 20;
pub const DEFAULT_MAX_SHARED_STRINGS: u64 = 5_000_000;
pub const DEFAULT_MAX_CELLS: u64 = 5_000_000;
/// `.ods` and `.xls` sheets are expanded in memory (about 160 bytes a cell
/// with calamine): 2 000 000 cells stay near 300 MiB.
pub const DEFAULT_MAX_CELLS_IN_MEMORY: u64 = 2_000_000;
/// Excel's own limit for the text of a cell.
pub const DEFAULT_MAX_CELL_LENGTH: u64 = 32_767;

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_entry_size: DEFAULT_MAX_ENTRY_SIZE,
            max_shared_strings: DEFAULT_MAX_SHARED_STRINGS,
            max_cells: None,
            max_cell_length: DEFAULT_MAX_CELL_LENGTH,
        }
    }
}

/// One limit: its flag and environment variable, for the error that names it.
#[derive(Debug, Clone, Copy)]
pub enum Limit {
    EntrySize,
    SharedStrings,
    Cells,
    CellLength,
}

impl Limit {
    pub fn flag(self) -> &'static str {
        match self {
            Limit::EntrySize => "--max-entry-size",
            Limit::SharedStrings => "--max-shared-strings",
            Limit::Cells => "--max-cells",
            Limit::CellLength => "--max-cell-length",
        }
    }

    pub fn env(self) -> &'static str {
        match self {
            Limit::EntrySize => "MAILSYNC_IMPORT_MAX_ENTRY_SIZE",
            Limit::SharedStrings => "MAILSYNC_IMPORT_MAX_SHARED_STRINGS",
            Limit::Cells => "MAILSYNC_IMPORT_MAX_CELLS",
            Limit::CellLength => "MAILSYNC_IMPORT_MAX_CELL_LENGTH",
        }
    }

    /// The error for `file` going past this limit: `what` says how.
    pub fn exceeded(self, file: &Path, what: impl std::fmt::Display) -> Error {
        Error::data(t!(
            "limit-error",
            file = file.display().to_string(),
            what = what.to_string()
        ))
        .with_hint(t!("limit-hint", flag = self.flag(), env = self.env()))
    }
}

impl Limits {
    /// The defaults, with each limit given replacing its default.
    pub fn with(
        max_entry_size: Option<u64>,
        max_shared_strings: Option<u64>,
        max_cells: Option<u64>,
        max_cell_length: Option<u64>,
    ) -> Self {
        let default = Self::default();
        Self {
            max_entry_size: max_entry_size.unwrap_or(default.max_entry_size),
            max_shared_strings: max_shared_strings.unwrap_or(default.max_shared_strings),
            max_cells,
            max_cell_length: max_cell_length.unwrap_or(default.max_cell_length),
        }
    }

    /// The cells a sheet of `format` may have.
    pub fn cells_for(&self, format: Format) -> u64 {
        match (self.max_cells, format) {
            (Some(max), _) => max,
            (None, Format::Ods | Format::Xls) => DEFAULT_MAX_CELLS_IN_MEMORY,
            (None, _) => DEFAULT_MAX_CELLS,
        }
    }
}

/// A limit as typed: `5000000`, `5_000_000`, or for sizes `512MiB`, `2GiB`,
/// `300MB`, `64k`.
pub fn parse_limit(text: &str, size: bool) -> std::result::Result<u64, String> {
    let clean: String = text.trim().chars().filter(|c| *c != '_').collect();
    let digits = clean
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(clean.len());
    let (number, unit) = clean.split_at(digits);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a number"))?;
    let unit = unit.trim().to_ascii_lowercase();
    let factor: u64 = match unit.as_str() {
        "" | "b" => 1,
        "k" | "kib" if size => 1 << 10,
        "m" | "mib" if size => 1 << 20,
        "g" | "gib" if size => 1 << 30,
        "kb" if size => 1_000,
        "mb" if size => 1_000_000,
        "gb" if size => 1_000_000_000,
        _ if size => return Err(format!("{text:?}: use bytes or KiB, MiB, GiB")),
        _ => return Err(format!("{text:?} is not a whole number")),
    };
    let value = number
        .checked_mul(factor)
        .ok_or_else(|| format!("{text:?} is too large"))?;
    if value == 0 {
        return Err(format!("{text:?}: a limit must be above zero"));
    }
    Ok(value)
}

/// `268435456` → `256 MiB` (French: `1,5 Mio`).
pub fn human_size(bytes: u64) -> String {
    let lang = crate::i18n::current();
    let units = [
        (1 << 30, t!("size-gib")),
        (1 << 20, t!("size-mib")),
        (1 << 10, t!("size-kib")),
    ];
    for (unit, name) in units {
        if bytes >= unit && bytes.is_multiple_of(unit) {
            return format!("{} {name}", bytes / unit);
        }
        if bytes >= unit {
            return format!("{} {name}", lang.decimal(bytes as f64 / unit as f64, 1));
        }
    }
    t!("size-bytes", count = bytes.to_string())
}

/// `5000000` → `5 000 000` in English (the README's limit table writes
/// limits so), `5 000 000` with narrow no-break spaces in French.
pub fn grouped(n: u64) -> String {
    if crate::i18n::current() == Lang::Fr {
        return Lang::Fr.count(n);
    }
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(' ');
        }
        out.push(c);
    }
    out
}

/// Checks `path` against `limits` before a spreadsheet library reads it.
/// Structure the check cannot parse is left to the reader, which refuses
/// it with its own error.
pub fn check_file(path: &Path, format: Format, limits: &Limits) -> Result<()> {
    match format {
        Format::Xlsx | Format::Xlsb | Format::Ods => check_archive(path, format, limits),
        Format::Xls => xls::check_xls(path, limits),
        // Read as a stream: cells and cell length are checked as rows arrive.
        Format::Csv => Ok(()),
    }
}

/// Reads at most `limit` bytes, then fails: the actual decompressed size of
/// an entry, whatever its header declares.
struct Bounded<R> {
    inner: R,
    left: u64,
    exceeded: bool,
}

impl<R: Read> Bounded<R> {
    fn new(inner: R, limit: u64) -> Self {
        Self {
            inner,
            left: limit,
            exceeded: false,
        }
    }
}

impl<R: Read> Read for Bounded<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.left == 0 {
            // One more byte says whether the entry goes on past the limit.
            let mut probe = [0u8; 1];
            return match self.inner.read(&mut probe)? {
                0 => Ok(0),
                _ => {
                    self.exceeded = true;
                    Err(std::io::Error::other("entry larger than the limit"))
                }
            };
        }
        let want = buf
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        let n = self.inner.read(&mut buf[..want])?;
        self.left -= n as u64;
        Ok(n)
    }
}

fn entry_too_large(path: &Path, entry: &str, limits: &Limits) -> Error {
    Limit::EntrySize.exceeded(
        path,
        t!(
            "limit-entry-size",
            entry = format!("{entry:?}"),
            limit = human_size(limits.max_entry_size)
        ),
    )
}

fn check_archive(path: &Path, format: Format, limits: &Limits) -> Result<()> {
    let file = File::open(path).map_err(|e| {
        Error::failure(t!(
            "file-error-read-file",
            file = path.display().to_string(),
            reason = e.to_string()
        ))
    })?;
    let Ok(mut zip) = zip::ZipArchive::new(BufReader::new(file)) else {
        // Not a zip archive: the reader says so in its own words.
        return Ok(());
    };
    for index in 0..zip.len() {
        let Ok(entry) = zip.by_index(index) else {
            continue;
        };
        let name = entry.name().map(|n| n.into_owned()).unwrap_or_default();
        if entry.size() > limits.max_entry_size {
            return Err(entry_too_large(path, &name, limits));
        }
        let lower = name.to_ascii_lowercase();
        let mut reader = Bounded::new(entry, limits.max_entry_size);
        let outcome = if format == Format::Xlsx && lower.ends_with("sharedstrings.xml") {
            xlsx::count_shared_strings(path, &mut reader, limits)
        } else if format == Format::Ods && lower == "content.xml" {
            ods::count_ods_cells(path, &mut reader, limits)
        } else if format == Format::Xlsb && lower.ends_with("sharedstrings.bin") {
            xlsb::check_xlsb_shared_strings(path, &mut reader, limits)
        } else {
            std::io::copy(&mut reader, &mut std::io::sink())
                .map(|_| ())
                .map_err(|_| Error::failure(String::new()))
        };
        if reader.exceeded {
            return Err(entry_too_large(path, &name, limits));
        }
        match outcome {
            Ok(()) => {}
            // A limit crossed inside the entry.
            Err(e) if !e.message().is_empty() => return Err(e),
            // Damaged data: the reader refuses it in its own words.
            Err(_) => {}
        }
    }
    Ok(())
}

/// An error with no message: the structure could not be read, which the
/// spreadsheet library reports itself.
fn unreadable() -> Error {
    Error::failure(String::new())
}

fn xml_reader<R: Read>(reader: R) -> quick_xml::Reader<BufReader<R>> {
    quick_xml::Reader::from_reader(BufReader::with_capacity(64 << 10, reader))
}

fn number_attr(e: &BytesStart<'_>, name: &str) -> Option<u64> {
    let attr = e.try_get_attribute(name).ok()??;
    let text = attr.value.trim().to_string();
    // Digits past what u64 holds are still a number: a huge one.
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        Some(text.parse().unwrap_or(u64::MAX))
    } else {
        None
    }
}

fn too_many_strings(path: &Path, n: u64, declared: bool, limits: &Limits) -> Error {
    Limit::SharedStrings.exceeded(
        path,
        t!(
            "limit-shared-strings",
            declared = if declared { "yes" } else { "no" },
            count = grouped(n),
            limit = grouped(limits.max_shared_strings)
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_read_as_typed() {
        assert_eq!(parse_limit("5000000", false), Ok(5_000_000));
        assert_eq!(parse_limit("5_000_000", false), Ok(5_000_000));
        assert_eq!(parse_limit("512MiB", true), Ok(512 << 20));
        assert_eq!(parse_limit("2 GiB", true), Ok(2 << 30));
        assert_eq!(parse_limit("300MB", true), Ok(300_000_000));
        assert!(parse_limit("0", false).is_err());
        assert!(parse_limit("5M", false).is_err());
        assert!(parse_limit("lots", true).is_err());
        assert!(parse_limit("99999999999999999999", false).is_err());
        assert!(parse_limit("99999999999GiB", true).is_err());
    }

    #[test]
    fn sizes_and_counts_print_for_people() {
        assert_eq!(human_size(256 << 20), "256 MiB");
        assert_eq!(human_size(1536 << 20), "1.5 GiB");
        assert_eq!(human_size(10), "10 bytes");
        assert_eq!(grouped(5_000_000), "5 000 000");
        assert_eq!(grouped(999), "999");
    }

    #[test]
    fn a_bounded_read_stops_past_the_limit() {
        let mut exact = Bounded::new(&[0u8; 10][..], 10);
        assert_eq!(std::io::copy(&mut exact, &mut std::io::sink()).unwrap(), 10);
        assert!(!exact.exceeded);
        let mut over = Bounded::new(&[0u8; 11][..], 10);
        assert!(std::io::copy(&mut over, &mut std::io::sink()).is_err());
        assert!(over.exceeded);
    }
}
