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

/// One record: its type, its body, and where the next one starts; `None`
/// past the end or where the record is cut short.
fn record(bin: &[u8], at: usize) -> Option<(u32, &[u8], usize)> {
    let mut at = at;
    let mut varint = |max: usize| -> Option<u32> {
        let mut value = 0u32;
        for i in 0..max {
            let b = *bin.get(at)?;
            at += 1;
            value |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        Some(value)
    };
    let typ = varint(2)?;
    let len = varint(4)? as usize;
    let body = bin.get(at..at.checked_add(len)?)?;
    Some((typ, body, at + len))
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

/// The sheet part `bin` with its short records in full form, or `None`
/// when it has none (or is damaged: calamine then reads it as it is).
fn with_full_forms(bin: &[u8]) -> Option<Vec<u8>> {
    let mut at = 0;
    let mut found = false;
    while let Some((typ, _, next)) = record(bin, at) {
        found |= full_form(typ).is_some();
        at = next;
    }
    if !found || at != bin.len() {
        return None;
    }
    let mut out = Vec::with_capacity(bin.len() + bin.len() / 2);
    let mut at = 0;
    let mut column: Option<u32> = None;
    while let Some((typ, body, next)) = record(bin, at) {
        at = next;
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
        push_varint(&mut out, typ, 2);
        push_varint(&mut out, u32::try_from(len).ok()?, 4);
        if let Some(c) = column_bytes {
            out.extend(c);
        }
        out.extend(body);
    }
    Some(out)
}

/// A copy of the `.xlsb` at `path` with its sheets' short records in full
/// form, or `None` when it needs none. Errors reading the archive are left
/// to calamine, which reports them in its own words.
pub fn full_form_copy(path: &Path) -> Option<tempfile::NamedTempFile> {
    let file = File::open(path).ok()?;
    let mut zip = zip::ZipArchive::new(BufReader::new(file)).ok()?;
    let mut sheets = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).ok()?;
        let name = entry.name().ok()?.into_owned();
        if name.starts_with("xl/worksheets/") && name.ends_with(".bin") {
            // Its size was checked against the entry-size limit already.
            let mut bin = Vec::new();
            entry.read_to_end(&mut bin).ok()?;
            if let Some(full) = with_full_forms(&bin) {
                sheets.push((i, full));
            }
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
    let mut out = zip::ZipWriter::new(copy.reopen().ok()?);
    let deflated = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for i in 0..zip.len() {
        match sheets.iter().find(|(index, _)| *index == i) {
            Some((_, full)) => {
                let name = zip.by_index(i).ok()?.name().ok()?.into_owned();
                out.start_file(name, deflated).ok()?;
                out.write_all(full).ok()?;
            }
            None => out.raw_copy_file(zip.by_index_raw(i).ok()?).ok()?,
        }
    }
    out.finish().ok()?;
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
        let full = with_full_forms(&sheet).unwrap();
        let mut at = 0;
        let mut cells = Vec::new();
        while let Some((typ, body, next)) = record(&full, at) {
            if typ == 0x07 {
                let column = u32::from_le_bytes(body[..4].try_into().unwrap());
                let index = u32::from_le_bytes(body[8..12].try_into().unwrap());
                cells.push((column, index));
            }
            assert_ne!(typ, 0x12);
            at = next;
        }
        assert_eq!(at, full.len());
        // Columns D, E, F on the first row; A on the next.
        assert_eq!(cells, [(3, 0), (4, 1), (5, 2), (0, 3)]);
        // A sheet of full records only is left alone.
        assert!(with_full_forms(
            &[
                row(0),
                rec(0x07, &[&0u32.to_le_bytes()[..], &isst(0)].concat())
            ]
            .concat()
        )
        .is_none());
    }
}
