//! `.xls` limits: the cells and strings a BIFF workbook holds, read from
//! its OLE compound file.

use std::path::Path;

use super::{entry_too_large, grouped, human_size, too_many_strings, Limit, Limits};
use crate::error::{Error, Result};
use crate::spreadsheet::format::Format;
use crate::spreadsheet::ole::{self, Stream};
use crate::t;

/// An `.xls` workbook is parsed whole when it opens: every sheet held as
/// its whole rectangle (the dimensions it declares, which calamine reserves,
/// and the span of its cells), every cell that names a shared string given
/// its own copy of the string. The check reads the `Workbook` stream as
/// calamine will ([`ole`]) and walks its records the way calamine does:
/// the globals, then each sheet from the position its `BoundSheet`
/// record gives.
pub(super) fn check_xls(path: &Path, limits: &Limits) -> Result<()> {
    let data = match ole::workbook_stream(path, limits.max_entry_size) {
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
