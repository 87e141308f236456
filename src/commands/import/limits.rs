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

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::Path;

use quick_xml::events::{BytesStart, Event};

use super::ole::Stream;
use super::reader::Format;
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
        Format::Xls => check_xls(path, limits),
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
            count_shared_strings(path, &mut reader, limits)
        } else if format == Format::Ods && lower == "content.xml" {
            count_ods_cells(path, &mut reader, limits)
        } else if format == Format::Xlsb && lower.ends_with("sharedstrings.bin") {
            check_xlsb_shared_strings(path, &mut reader, limits)
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

/// The `count`/`uniqueCount` an `<sst>` declares and the `<si>` entries it
/// holds, each within the limit.
fn count_shared_strings<R: Read>(path: &Path, entry: R, limits: &Limits) -> Result<()> {
    let mut xml = xml_reader(entry);
    let mut buf = Vec::with_capacity(4096);
    let mut strings = 0u64;
    loop {
        buf.clear();
        match xml.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => match e.local_name().as_ref() {
                "sst" => {
                    for name in ["count", "uniqueCount"] {
                        if let Some(n) = number_attr(&e, name) {
                            if n > limits.max_shared_strings {
                                return Err(too_many_strings(path, n, true, limits));
                            }
                        }
                    }
                }
                "si" => {
                    strings += 1;
                    if strings > limits.max_shared_strings {
                        return Err(too_many_strings(path, strings, false, limits));
                    }
                }
                _ => {}
            },
            Ok(Event::Eof) => return Ok(()),
            Ok(_) => {}
            Err(_) => return Err(unreadable()),
        }
    }
}

/// `.xlsb` shared strings: the counts of the `BrtBeginSst` record.
fn check_xlsb_shared_strings<R: Read>(path: &Path, mut entry: R, limits: &Limits) -> Result<()> {
    // Records: a 1–2 byte type, a 1–4 byte length (7 bits a byte), data.
    fn varint(r: &mut impl Read, max_bytes: usize) -> Option<u32> {
        let mut value = 0u32;
        for i in 0..max_bytes {
            let mut b = [0u8; 1];
            r.read_exact(&mut b).ok()?;
            value |= u32::from(b[0] & 0x7f) << (7 * i);
            if b[0] & 0x80 == 0 {
                break;
            }
        }
        Some(value)
    }
    let typ = varint(&mut entry, 2).ok_or_else(unreadable)?;
    let len = varint(&mut entry, 4).ok_or_else(unreadable)?;
    if typ != 0x9F || len < 8 {
        return Err(unreadable());
    }
    let mut counts = [0u8; 8];
    entry.read_exact(&mut counts).map_err(|_| unreadable())?;
    let total = u64::from(u32::from_le_bytes([
        counts[0], counts[1], counts[2], counts[3],
    ]));
    let unique = u64::from(u32::from_le_bytes([
        counts[4], counts[5], counts[6], counts[7],
    ]));
    for n in [total, unique] {
        if n > limits.max_shared_strings {
            return Err(too_many_strings(path, n, true, limits));
        }
    }
    // The rest of the entry still counts towards its size.
    std::io::copy(&mut entry, &mut std::io::sink()).map_err(|_| unreadable())?;
    Ok(())
}

/// calamine's own caps on an `.ods` sheet, which the count follows.
const ODS_MAX_ROWS: u64 = 1_048_576;
const ODS_MAX_COLUMNS: u64 = 16_384;

/// The cells each `.ods` sheet expands to in memory: the rectangle from its
/// first to its last non-empty row (repeats included) by its widest row,
/// and the cells stored before expansion. Trailing empty rows and columns,
/// which LibreOffice writes with huge repeat counts, cost nothing and are
/// not counted.
fn count_ods_cells<R: Read>(path: &Path, entry: R, limits: &Limits) -> Result<()> {
    #[derive(Default)]
    struct Sheet {
        name: String,
        rows: u64,
        first: Option<u64>,
        last: u64,
        widest: u64,
        stored: u64,
    }
    impl Sheet {
        fn cells(&self) -> u64 {
            let dense = match self.first {
                Some(first) => (self.last - first).saturating_mul(self.widest),
                None => 0,
            };
            dense.max(self.stored)
        }
    }
    #[derive(Default)]
    struct Row {
        repeats: u64,
        width: u64,
        filled_width: u64,
        /// Bytes of text of the row's cells, repeated columns included.
        text: u64,
    }
    struct Cell {
        repeats: u64,
        filled: bool,
        /// Bytes of text (and formula) the cell holds.
        text: u64,
    }

    let max_cells = limits.cells_for(Format::Ods);
    let mut xml = xml_reader(entry);
    let mut buf = Vec::with_capacity(4096);
    let mut sheet: Option<Sheet> = None;
    let mut row: Option<Row> = None;
    let mut cell: Option<Cell> = None;
    let mut workbook_cells = 0u64;
    // calamine gives each repeated cell its own copy of the text.
    let mut workbook_text = 0u64;
    let fail = |sheet: &Sheet, cells: u64| {
        Limit::Cells.exceeded(
            path,
            t!(
                "limit-ods-cells",
                sheet = format!("{:?}", sheet.name),
                count = grouped(cells),
                limit = grouped(max_cells)
            ),
        )
    };
    let close_cell = |row: &mut Row, cell: Cell| {
        let repeats = cell.repeats.min(ODS_MAX_COLUMNS.saturating_sub(row.width));
        row.text = row.text.saturating_add(cell.text.saturating_mul(repeats));
        row.width = (row.width + cell.repeats).min(ODS_MAX_COLUMNS);
        if cell.filled {
            row.filled_width = row.width;
        }
    };
    loop {
        buf.clear();
        let event = match xml.read_event_into(&mut buf) {
            Ok(event) => event,
            Err(_) => return Err(unreadable()),
        };
        let (start, empty) = match &event {
            Event::Start(e) => (Some(e), false),
            Event::Empty(e) => (Some(e), true),
            _ => (None, false),
        };
        if let Some(e) = start {
            match e.name().as_ref() {
                "table:table" if !empty => {
                    let name = e
                        .try_get_attribute("table:name")
                        .ok()
                        .flatten()
                        .map(|a| a.value.into_owned())
                        .unwrap_or_default();
                    sheet = Some(Sheet {
                        name,
                        ..Sheet::default()
                    });
                }
                "table:table-row" if sheet.is_some() => {
                    let new = Row {
                        repeats: number_attr(e, "table:number-rows-repeated").unwrap_or(1),
                        ..Row::default()
                    };
                    if empty {
                        if let Some(s) = sheet.as_mut() {
                            s.rows = (s.rows + new.repeats).min(ODS_MAX_ROWS);
                        }
                    } else {
                        row = Some(new);
                    }
                }
                "table:table-cell" | "table:covered-table-cell" if row.is_some() => {
                    let attr_len = |name: &str| {
                        e.try_get_attribute(name)
                            .ok()
                            .flatten()
                            .map_or(0, |a| a.value.len() as u64)
                    };
                    let new = Cell {
                        text: attr_len("table:formula") + attr_len("office:string-value"),
                        repeats: number_attr(e, "table:number-columns-repeated").unwrap_or(1),
                        filled: e
                            .try_get_attribute("office:value-type")
                            .ok()
                            .flatten()
                            .is_some()
                            || e.try_get_attribute("table:formula")
                                .ok()
                                .flatten()
                                .is_some(),
                    };
                    if empty {
                        if let Some(r) = row.as_mut() {
                            close_cell(r, new);
                        }
                    } else {
                        cell = Some(new);
                    }
                }
                // `<text:s text:c="N"/>`: N spaces.
                "text:s" | "text:tab" | "text:line-break" => {
                    if let Some(c) = cell.as_mut() {
                        let n = number_attr(e, "text:c").unwrap_or(1);
                        c.text = c.text.saturating_add(n);
                        c.filled = true;
                    }
                }
                _ => {}
            }
            continue;
        }
        match event {
            Event::Text(t) => {
                if let Some(c) = cell.as_mut() {
                    c.text = c.text.saturating_add(t.len() as u64);
                    c.filled |= !t.trim().is_empty();
                }
            }
            Event::CData(t) => {
                if let Some(c) = cell.as_mut() {
                    c.text = c.text.saturating_add(t.len() as u64);
                    c.filled = true;
                }
            }
            Event::GeneralRef(t) => {
                if let Some(c) = cell.as_mut() {
                    c.text = c.text.saturating_add(t.len() as u64);
                    c.filled = true;
                }
            }
            Event::End(e) => match e.name().as_ref() {
                "table:table-cell" | "table:covered-table-cell" => {
                    if let (Some(r), Some(c)) = (row.as_mut(), cell.take()) {
                        close_cell(r, c);
                    }
                }
                "table:table-row" => {
                    if let (Some(s), Some(r)) = (sheet.as_mut(), row.take()) {
                        let before = s.rows;
                        s.rows = (s.rows + r.repeats).min(ODS_MAX_ROWS);
                        if r.filled_width > 0 {
                            s.first.get_or_insert(before);
                            s.last = s.rows;
                            s.widest = s.widest.max(r.filled_width);
                            s.stored = s.stored.saturating_add(r.filled_width);
                        }
                        // The whole workbook is held at once.
                        let cells = workbook_cells.saturating_add(s.cells());
                        if cells > max_cells {
                            return Err(fail(s, cells));
                        }
                        let repeats = r.repeats.min(ODS_MAX_ROWS.saturating_sub(before));
                        workbook_text =
                            workbook_text.saturating_add(r.text.saturating_mul(repeats));
                        if workbook_text > limits.max_entry_size {
                            return Err(Limit::EntrySize.exceeded(
                                path,
                                t!(
                                    "limit-ods-text",
                                    sheet = format!("{:?}", s.name),
                                    limit = human_size(limits.max_entry_size)
                                ),
                            ));
                        }
                    }
                }
                "table:table" => {
                    if let Some(s) = sheet.take() {
                        workbook_cells = workbook_cells.saturating_add(s.cells());
                    }
                }
                _ => {}
            },
            Event::Eof => return Ok(()),
            _ => {}
        }
    }
}

/// An `.xls` workbook is parsed whole when it opens: every sheet held as
/// its whole rectangle (the dimensions it declares, which calamine reserves,
/// and the span of its cells), every cell that names a shared string given
/// its own copy of the string. The check reads the `Workbook` stream as
/// calamine will ([`super::ole`]) and walks its records the way calamine
/// does: the globals, then each sheet from the position its `BoundSheet`
/// record gives.
fn check_xls(path: &Path, limits: &Limits) -> Result<()> {
    let data = match super::ole::workbook_stream(path, limits.max_entry_size) {
        // Not readable here, not an OLE file, no workbook in it: the reader
        // refuses it in its own words.
        Err(_) | Ok(Stream::NotOle) | Ok(Stream::Missing) => return Ok(()),
        Ok(Stream::Damaged(why)) => {
            return Err(Error::data(t!(
                "import-error-ole-damaged",
                file = path.display().to_string(),
                reason = why
            )))
        }
        Ok(Stream::TooLarge) => return Err(entry_too_large(path, "Workbook", limits)),
        Ok(Stream::Found(data)) => data,
    };
    check_biff(path, &data, limits)
}

/// One BIFF record, with the `CONTINUE` records that follow it.
struct Record<'a> {
    typ: u16,
    data: &'a [u8],
    more: std::collections::VecDeque<&'a [u8]>,
}

impl<'a> Record<'a> {
    /// Moves on to the next `CONTINUE` record.
    fn next_part(&mut self) -> bool {
        match self.more.pop_front() {
            Some(part) => {
                self.data = part;
                true
            }
            None => false,
        }
    }

    fn skip(&mut self, mut n: u64) -> Option<()> {
        while n > 0 {
            if self.data.is_empty() && !self.next_part() {
                return None;
            }
            let step = self
                .data
                .len()
                .min(usize::try_from(n).unwrap_or(usize::MAX));
            self.data = &self.data[step..];
            n -= step as u64;
        }
        Some(())
    }
}

/// calamine's record iterator: `None` where it would fail.
fn records(mut stream: &[u8]) -> impl Iterator<Item = Option<Record<'_>>> {
    std::iter::from_fn(move || {
        if stream.is_empty() {
            return None;
        }
        if stream.len() < 4 {
            stream = &[];
            return Some(None);
        }
        let typ = u16::from_le_bytes([stream[0], stream[1]]);
        let len = usize::from(u16::from_le_bytes([stream[2], stream[3]]));
        if stream.len() < len + 4 {
            stream = &[];
            return Some(None);
        }
        let data = &stream[4..len + 4];
        stream = &stream[len + 4..];
        let mut more = std::collections::VecDeque::new();
        while stream.len() > 4 && u16::from_le_bytes([stream[0], stream[1]]) == 0x003C {
            let len = usize::from(u16::from_le_bytes([stream[2], stream[3]]));
            if stream.len() < len + 4 {
                stream = &[];
                return Some(None);
            }
            more.push_back(&stream[4..len + 4]);
            stream = &stream[len + 4..];
        }
        Some(Some(Record { typ, data, more }))
    })
}

/// The length of each string of an `SST` record, in the bytes of UTF-8 it
/// may take (three per UTF-16 character, two per 8-bit one), as calamine
/// reads them; `None` where calamine would fail.
fn sst_lengths(mut r: Record<'_>) -> Option<Vec<u64>> {
    let mut lengths = Vec::new();
    r.data = r.data.get(8..)?;
    while !r.data.is_empty() || r.next_part() {
        if r.data.is_empty() {
            lengths.push(0);
            continue;
        }
        if r.data.len() < 3 {
            return None;
        }
        let mut chars = u64::from(u16::from_le_bytes([r.data[0], r.data[1]]));
        let flags = r.data[2];
        r.data = &r.data[3..];
        let mut runs = 0u64;
        if flags & 0x8 != 0 {
            let b = r.data.get(..2)?;
            runs = u64::from(u16::from_le_bytes([b[0], b[1]]));
            r.data = &r.data[2..];
        }
        let mut extra = 0u64;
        if flags & 0x4 != 0 {
            let b = r.data.get(..4)?;
            extra = i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize as u64;
            r.data = &r.data[4..];
        }
        let mut wide = flags & 0x1 != 0;
        let mut bytes = 0u64;
        while chars > 0 {
            let width = if wide { 2 } else { 1 };
            let here = (r.data.len() / width).min(usize::try_from(chars).unwrap_or(usize::MAX));
            r.data = &r.data[here * width..];
            chars -= here as u64;
            bytes += here as u64 * if wide { 3 } else { 2 };
            if chars > 0 {
                if !r.next_part() || r.data.is_empty() {
                    return None;
                }
                wide = r.data[0] & 0x1 != 0;
                r.data = &r.data[1..];
            }
        }
        lengths.push(bytes);
        r.skip(runs * 4)?;
        r.skip(extra)?;
    }
    Some(lengths)
}

fn check_biff(path: &Path, data: &[u8], limits: &Limits) -> Result<()> {
    let max_cells = limits.cells_for(Format::Xls);
    let too_many_cells = |cells: u64| {
        Limit::Cells.exceeded(
            path,
            t!(
                "limit-xls-cells",
                count = grouped(cells),
                limit = grouped(max_cells)
            ),
        )
    };
    // The globals: sheet positions and the shared strings.
    let mut sheets = Vec::new();
    let mut strings: Vec<u64> = Vec::new();
    for record in records(data) {
        // calamine refuses the workbook: let it say so.
        let Some(r) = record else { return Ok(()) };
        match r.typ {
            0x0085 => match r.data.get(..4) {
                Some(b) => sheets.push(u32::from_le_bytes([b[0], b[1], b[2], b[3]]) as usize),
                None => return Ok(()),
            },
            0x00FC => {
                if let Some(b) = r.data.get(..8) {
                    for n in [&b[..4], &b[4..8]] {
                        let n = u64::from(u32::from_le_bytes([n[0], n[1], n[2], n[3]]));
                        if n > limits.max_shared_strings {
                            return Err(too_many_strings(path, n, true, limits));
                        }
                    }
                }
                let Some(lengths) = sst_lengths(r) else {
                    return Ok(());
                };
                if lengths.len() as u64 > limits.max_shared_strings {
                    return Err(too_many_strings(path, lengths.len() as u64, false, limits));
                }
                strings = lengths;
            }
            0x000A => break,
            _ => {}
        }
    }
    // Each sheet as calamine parses it, all of them held at once.
    let mut workbook_cells = 0u64;
    let mut text = 0u64;
    for pos in sheets {
        let Some(sheet) = data.get(pos..) else {
            return Ok(());
        };
        // Rows first..last and columns first..last of the cells, and of the
        // formulas (held in a second rectangle).
        let mut span: Option<(u32, u32, u32, u32)> = None;
        let mut formulas: Option<(u32, u32, u32, u32)> = None;
        let mut reserved = 0u64;
        let mut seen_bof = false;
        let mut depth = 0usize;
        let cells_of = |s: Option<(u32, u32, u32, u32)>| {
            s.map_or(0, |s| u64::from(s.1 - s.0 + 1) * u64::from(s.3 - s.2 + 1))
        };
        let widen = |s: &mut Option<(u32, u32, u32, u32)>, r: u32, c: u32, last_c: u32| {
            let s = s.get_or_insert((r, r, c, last_c));
            *s = (s.0.min(r), s.1.max(r), s.2.min(c), s.3.max(last_c));
        };
        for record in records(sheet) {
            let Some(r) = record else { return Ok(()) };
            if depth > 0 {
                match r.typ {
                    0x0809 => depth += 1,
                    0x000A => depth -= 1,
                    _ => {}
                }
                continue;
            }
            let body = r.data;
            let u16_at = |i: usize| -> Option<u32> {
                body.get(i..i + 2)
                    .map(|b| u32::from(u16::from_le_bytes([b[0], b[1]])))
            };
            let u32_at = |i: usize| -> Option<u32> {
                body.get(i..i + 4)
                    .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            };
            match r.typ {
                0x0809 if seen_bof => depth += 1,
                0x0809 => seen_bof = true,
                // DIMENSIONS, which calamine reserves, as it reads them.
                0x0200 => {
                    let (rf, rl, cf, cl) = match body.len() {
                        10 => (u16_at(0), u16_at(2), u16_at(4), u16_at(6)),
                        14 | 16 => (u32_at(0), u32_at(4), u16_at(8), u16_at(10)),
                        _ => return Ok(()),
                    };
                    let (Some(rf), Some(rl), Some(mut cf), Some(cl)) = (rf, rl, cf, cl) else {
                        return Ok(());
                    };
                    if cf > 0xFF || cl < cf {
                        cf = 0;
                    }
                    if rl >= 1 && cl >= 1 {
                        let rows = u64::from((rl - 1).wrapping_sub(rf).wrapping_add(1));
                        let cols = u64::from((cl - 1).wrapping_sub(cf).wrapping_add(1));
                        reserved = reserved.saturating_add(rows.saturating_mul(cols));
                    }
                }
                // Cell records: row and column first.
                0x0203 | 0x0204 | 0x00D6 | 0x0205 | 0x027E | 0x00FD | 0x0006 | 0x00BD => {
                    let (Some(row), Some(col)) = (u16_at(0), u16_at(2)) else {
                        return Ok(());
                    };
                    let last_col = if r.typ == 0x00BD {
                        // MULRK: the last column is in the record's last two bytes.
                        body.len()
                            .checked_sub(2)
                            .and_then(u16_at)
                            .unwrap_or(col)
                            .max(col)
                    } else {
                        col
                    };
                    widen(&mut span, row, col, last_col);
                    if r.typ == 0x0006 {
                        widen(&mut formulas, row, col, col);
                    }
                    // LABELSST: a copy of the shared string for this cell.
                    if r.typ == 0x00FD {
                        if let Some(i) = u32_at(6) {
                            text =
                                text.saturating_add(strings.get(i as usize).copied().unwrap_or(0));
                        }
                    }
                }
                0x000A => break,
                _ => {}
            }
            let cells = workbook_cells
                .saturating_add(reserved)
                .saturating_add(cells_of(span))
                .saturating_add(cells_of(formulas));
            if cells > max_cells {
                return Err(too_many_cells(cells));
            }
            if text > limits.max_entry_size {
                return Err(Limit::EntrySize.exceeded(
                    path,
                    t!("limit-xls-text", limit = human_size(limits.max_entry_size)),
                ));
            }
        }
        workbook_cells = workbook_cells
            .saturating_add(reserved)
            .saturating_add(cells_of(span))
            .saturating_add(cells_of(formulas));
    }
    Ok(())
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
