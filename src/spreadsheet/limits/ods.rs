//! `.ods` limits: the cells each sheet expands to in memory.

use std::io::Read;
use std::path::Path;

use quick_xml::events::Event;

use super::{grouped, human_size, number_attr, unreadable, xml_reader, Limit, Limits};
use crate::error::Result;
use crate::spreadsheet::format::Format;
use crate::t;

/// calamine's own caps on an `.ods` sheet, which the count follows.
const ODS_MAX_ROWS: u64 = 1_048_576;
const ODS_MAX_COLUMNS: u64 = 16_384;

/// The cells each `.ods` sheet expands to in memory: the rectangle from its
/// first to its last non-empty row (repeats included) by its widest row,
/// and the cells stored before expansion. Trailing empty rows and columns,
/// which LibreOffice writes with huge repeat counts, cost nothing and are
/// not counted.
pub(super) fn count_ods_cells<R: Read>(path: &Path, entry: R, limits: &Limits) -> Result<()> {
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
