//! `.xlsb` cells in their short form, which calamine does not read.
//!
//! MS-XLSB gives each cell record two forms: the full one (`BrtCellIsst`,
//! `BrtCellReal`, ...) starts with the cell's column; the short one
//! (`BrtShortIsst`, `BrtShortReal`, ...) leaves the column out, being the
//! previous cell's plus one. SheetJS, behind many web apps' "export to
//! Excel", writes the short form for every cell after the first of a row;
//! calamine 0.38 skips those records, so such a sheet read as one cell a
//! row, and every email column came out empty. A workbook whose sheets hold
//! short records is read from a copy in which each is written in its full
//! form; any other workbook is read as it is.
//!
//! Only the sheet parts are rewritten, record by record; nothing else of
//! the file is interpreted here.

use std::fs::File;
use std::io::{BufReader, Read, Write};
use std::path::Path;

/// The full form of each short record type, by type.
fn full_form(short: u32) -> Option<u32> {
    match short {
        0x0C => Some(0x01), // BrtShortBlank → BrtCellBlank
        0x0D => Some(0x02), // BrtShortRk → BrtCellRk
        0x0E => Some(0x03), // BrtShortError → BrtCellError
        0x0F => Some(0x04), // BrtShortBool → BrtCellBool
        0x10 => Some(0x05), // BrtShortReal → BrtCellReal
        0x11 => Some(0x06), // BrtShortSt → BrtCellSt
        0x12 => Some(0x07), // BrtShortIsst → BrtCellIsst
        _ => None,
    }
}

/// Records that carry a column first: the full cell forms, the formula
/// cells and `BrtCellRString`.
fn has_column(typ: u32) -> bool {
    matches!(typ, 0x01..=0x0B | 0x3E)
}

fn next_byte(r: &mut impl Read) -> std::io::Result<Option<u8>> {
    let mut b = [0u8; 1];
    loop {
        match r.read(&mut b) {
            Ok(0) => return Ok(None),
            Ok(_) => return Ok(Some(b[0])),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

fn cut_short() -> std::io::Error {
    std::io::Error::from(std::io::ErrorKind::UnexpectedEof)
}

/// A number of at most `max` bytes, seven bits a byte, `first` read already.
fn varint(r: &mut impl Read, max: usize, first: u8) -> std::io::Result<u32> {
    let mut value = 0u32;
    let mut b = first;
    for i in 0..max {
        value |= u32::from(b & 0x7F) << (7 * i);
        if b & 0x80 == 0 || i + 1 == max {
            break;
        }
        b = next_byte(r)?.ok_or_else(cut_short)?;
    }
    Ok(value)
}

/// The type (1–2 bytes) and length (1–4 bytes) that start a record, seven
/// bits a byte; `None` at the end of the part.
pub(super) fn record_header(r: &mut impl Read) -> std::io::Result<Option<(u32, u32)>> {
    let Some(first) = next_byte(r)? else {
        return Ok(None);
    };
    let typ = varint(r, 2, first)?;
    let first = next_byte(r)?.ok_or_else(cut_short)?;
    let len = varint(r, 4, first)?;
    Ok(Some((typ, len)))
}

/// Reads the next record of a part into `body` and returns its type;
/// `None` at the end of the part, an error where a record is cut short.
/// Records are read one at a time: a sheet is never held whole.
fn read_record(r: &mut impl Read, body: &mut Vec<u8>) -> std::io::Result<Option<u32>> {
    let Some((typ, len)) = record_header(r)? else {
        return Ok(None);
    };
    body.clear();
    r.take(u64::from(len)).read_to_end(body)?;
    if body.len() != len as usize {
        return Err(cut_short());
    }
    Ok(Some(typ))
}

fn push_varint(out: &mut Vec<u8>, mut value: u32, max: usize) {
    for i in 0..max {
        let more = value >= 0x80 && i + 1 < max;
        out.push((value & 0x7F) as u8 | if more { 0x80 } else { 0 });
        value >>= 7;
        if !more {
            break;
        }
    }
}

/// Whether the part holds a short record (a damaged part: no, and calamine
/// reads it as it is).
fn has_short_records(mut r: impl Read) -> bool {
    let mut body = Vec::new();
    while let Ok(Some(typ)) = read_record(&mut r, &mut body) {
        if full_form(typ).is_some() {
            return true;
        }
    }
    false
}

/// Copies the part from `r` to `out` with each short record in full form.
fn write_full_forms(mut r: impl Read, out: &mut impl Write) -> std::io::Result<()> {
    let mut body = Vec::new();
    let mut head = Vec::with_capacity(10);
    let mut column: Option<u32> = None;
    while let Some(typ) = read_record(&mut r, &mut body)? {
        let (typ, column_bytes) = match full_form(typ) {
            Some(full) => {
                let c = column.map_or(0, |c| c.wrapping_add(1));
                column = Some(c);
                (full, Some(c.to_le_bytes()))
            }
            None => {
                if typ == 0x00 {
                    // BrtRowHdr: a new row starts.
                    column = None;
                } else if has_column(typ) {
                    column = body
                        .get(..4)
                        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
                }
                (typ, None)
            }
        };
        let len = body.len() + column_bytes.map_or(0, |c| c.len());
        let len = u32::try_from(len).map_err(|_| cut_short())?;
        head.clear();
        push_varint(&mut head, typ, 2);
        push_varint(&mut head, len, 4);
        out.write_all(&head)?;
        if let Some(c) = column_bytes {
            out.write_all(&c)?;
        }
        out.write_all(&body)?;
    }
    Ok(())
}

fn is_sheet(name: &str) -> bool {
    name.starts_with("xl/worksheets/") && name.ends_with(".bin")
}

/// A copy of the `.xlsb` at `path` with its sheets' short records in full
/// form, or `None` when it needs none. Errors reading the archive are left
/// to calamine, which reports them in its own words.
pub fn full_form_copy(path: &Path) -> Option<tempfile::NamedTempFile> {
    let file = File::open(path).ok()?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).ok()?;
    let mut sheets = Vec::new();
    for i in 0..zip.len() {
        let entry = zip.by_index(i).ok()?;
        let name = entry.name().ok()?.into_owned();
        if is_sheet(&name) && has_short_records(BufReader::new(entry)) {
            sheets.push(i);
        }
    }
    if sheets.is_empty() {
        return None;
    }
    let copy = tempfile::Builder::new()
        .prefix("mailsync-")
        .suffix(".xlsb")
        .tempfile()
        .ok()?;
    let mut out = zip::ZipWriter::new(std::io::BufWriter::new(copy.reopen().ok()?));
    // Stored, not deflated: the copy lives only while the sheet is read,
    // and compressing it would cost more than the read.
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    for i in 0..zip.len() {
        if sheets.contains(&i) {
            let entry = zip.by_index(i).ok()?;
            let name = entry.name().ok()?.into_owned();
            out.start_file(name, stored).ok()?;
            write_full_forms(BufReader::new(entry), &mut out).ok()?;
        } else {
            out.raw_copy_file(zip.by_index_raw(i).ok()?).ok()?;
        }
    }
    out.finish().ok()?.flush().ok()?;
    Some(copy)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(typ: u32, body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        push_varint(&mut out, typ, 2);
        push_varint(&mut out, body.len() as u32, 4);
        out.extend(body);
        out
    }

    #[test]
    fn short_records_get_the_column_after_the_previous_cell() {
        let style = [1u8, 0, 0, 0];
        let isst = |i: u32| [&style[..], &i.to_le_bytes()].concat();
        let row = |r: u32| rec(0x00, &[&r.to_le_bytes()[..], &[0u8; 21]].concat());
        let sheet = [
            row(0),
            rec(0x07, &[&3u32.to_le_bytes()[..], &isst(0)].concat()),
            rec(0x12, &isst(1)),
            rec(0x12, &isst(2)),
            row(1),
            rec(0x12, &isst(3)),
        ]
        .concat();
        assert!(has_short_records(&sheet[..]));
        let mut full = Vec::new();
        write_full_forms(&sheet[..], &mut full).unwrap();
        let mut reader = &full[..];
        let mut body = Vec::new();
        let mut cells = Vec::new();
        while let Some(typ) = read_record(&mut reader, &mut body).unwrap() {
            if typ == 0x07 {
                let column = u32::from_le_bytes(body[..4].try_into().unwrap());
                let index = u32::from_le_bytes(body[8..12].try_into().unwrap());
                cells.push((column, index));
            }
            assert_ne!(typ, 0x12);
        }
        // Columns D, E, F on the first row; A on the next.
        assert_eq!(cells, [(3, 0), (4, 1), (5, 2), (0, 3)]);
        // A sheet of full records only is left alone.
        let full_only = [
            row(0),
            rec(0x07, &[&0u32.to_le_bytes()[..], &isst(0)].concat()),
        ]
        .concat();
        assert!(!has_short_records(&full_only[..]));
        // A record cut short: left to calamine.
        assert!(
            !has_short_records(&sheet[..sheet.len() - 3]) || {
                let mut out = Vec::new();
                write_full_forms(&sheet[..sheet.len() - 3], &mut out).is_err()
            }
        );
    }
}
