//! The sheet reader never panics, whatever the bytes: random files under
//! every supported extension, and valid workbooks with bytes flipped or cut.
//! Inputs that once crashed a reader are kept below as regression cases.
//! Then structure-aware cases: the real fixtures opened, mutated inside
//! their container and closed again, run through the binary.

use crate::common;
use crate::workbooks;

use std::path::Path;

use indicatif::ProgressBar;
use mailsync::commands::import::scan;
use mailsync::commands::import::validate::ColumnSpec;
use mailsync::spreadsheet::reader::Workbook;
use proptest::prelude::*;

const EXTENSIONS: [&str; 6] = ["xlsx", "xlsm", "xlsb", "xls", "ods", "csv"];

/// Opens and scans `bytes` saved as `name`: Ok or a clean error, never a panic.
fn read(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let outcome = std::panic::catch_unwind(|| {
        if let Ok(book) = Workbook::open(&path, None) {
            let _ = scan(
                &book,
                &ColumnSpec::Index(0),
                &ColumnSpec::Index(1),
                &ProgressBar::hidden(),
            );
        }
    });
    assert!(
        outcome.is_ok(),
        "reading {name} ({} bytes) panicked",
        bytes.len()
    );
}

fn valid_xlsx() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "Organisation").unwrap();
    sheet.write_string(0, 1, "Email").unwrap();
    for i in 1..40u32 {
        sheet.write_string(i, 0, format!("Org {i}")).unwrap();
        sheet
            .write_string(i, 1, format!("p{i}@example.fr"))
            .unwrap();
        sheet.write_number(i, 2, f64::from(i) * 1.5).unwrap();
    }
    book.save_to_buffer().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), ext in 0usize..6) {
        let dir = tempfile::tempdir().unwrap();
        read(dir.path(), &format!("f.{}", EXTENSIONS[ext]), &bytes);
    }

    #[test]
    fn damaged_workbooks_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_xlsx();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            let keep = cut.index(bytes.len());
            bytes.truncate(keep);
        }
        let dir = tempfile::tempdir().unwrap();
        read(dir.path(), "damaged.xlsx", &bytes);
    }
}

#[test]
fn known_troublesome_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // A zip signature and nothing else; an OLE signature and nothing else;
    // a CSV with an unterminated quote and invalid UTF-8.
    read(dir.path(), "zip.xlsx", b"PK\x03\x04");
    read(
        dir.path(),
        "ole.xls",
        &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1],
    );
    read(dir.path(), "quote.csv", b"\"Acme,a@b.fr\n\xff\xfe,x\n");
    read(
        dir.path(),
        "ods.ods",
        b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    );
}

// ---- Structure-aware fuzzing: valid workbooks mutated past the container ----
//
// The real fixtures (tests/fixtures/import/) are opened, the XML or binary
// records inside them mutated, and the result closed again into a valid
// zip or OLE container, so the mutation reaches the spreadsheet reader
// instead of stopping at a checksum. Each case runs the binary
// (`--json import --dry-run`, nothing written, no server needed) and must
// end by itself, exit 0, 1 or 4, with a clear message, within its time and
// memory. Seeds are fixed: every run tries the same cases, and a failure
// names its seed and what was done to the file.

/// SplitMix64: a small deterministic generator, so a failing case is found
/// again by its seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

/// Numbers a reader may trust too much.
const HUGE: [&str; 12] = [
    "0",
    "1",
    "65536",
    "1048576",
    "1048577",
    "2147483648",
    "4294967295",
    "4294967296",
    "9000000000",
    "18446744073709551615",
    "99999999999999999999999999",
    "-1",
];

/// The limits the fuzzing runs under: lowered so that each case stays
/// small and quick; a case past one must be refused by it.
const LIMITS: [(&str, &str); 4] = [
    ("MAILSYNC_IMPORT_MAX_ENTRY_SIZE", "4MiB"),
    ("MAILSYNC_IMPORT_MAX_SHARED_STRINGS", "10000"),
    ("MAILSYNC_IMPORT_MAX_CELLS", "20000"),
    ("MAILSYNC_IMPORT_MAX_CELL_LENGTH", "32767"),
];
const CASE_MIB: f64 = 256.0;
const CASE_SECONDS: f64 = 10.0;

fn fixture(ext: &str) -> Vec<u8> {
    std::fs::read(
        Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/import/contacts.{ext}")),
    )
    .unwrap()
}

/// The entries of a zip archive, in order.
fn unzip(bytes: &[u8]) -> Vec<(String, Vec<u8>)> {
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    (0..zip.len())
        .map(|i| {
            let mut f = zip.by_index(i).unwrap();
            let name = f.name().unwrap().into_owned();
            let mut content = Vec::new();
            std::io::Read::read_to_end(&mut f, &mut content).unwrap();
            (name, content)
        })
        .collect()
}

/// A zip archive of `entries`, deflated, with honest headers.
fn rezip(entries: &[(String, Vec<u8>)]) -> Vec<u8> {
    let mut out = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    for (name, content) in entries {
        out.start_file(name.as_str(), options).unwrap();
        std::io::Write::write_all(&mut out, content).unwrap();
    }
    out.finish().unwrap().into_inner()
}

/// Byte ranges of the values of `attr="..."` in `xml`.
fn attribute_values(xml: &[u8], attr: &str) -> Vec<(usize, usize)> {
    let needle = format!(" {attr}=\"");
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&xml[from..], needle.as_bytes()) {
        let start = from + at + needle.len();
        let Some(len) = xml[start..].iter().position(|b| *b == b'"') else {
            break;
        };
        found.push((start, start + len));
        from = start + len;
    }
    found
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// All start positions of `needle`.
fn find_all(hay: &[u8], needle: &[u8]) -> Vec<usize> {
    let mut found = Vec::new();
    let mut from = 0;
    while let Some(at) = find(&hay[from..], needle) {
        found.push(from + at);
        from += at + 1;
    }
    found
}

fn splice(bytes: &mut Vec<u8>, range: (usize, usize), with: &[u8]) {
    bytes.splice(range.0..range.1, with.iter().copied());
}

/// One mutation of an XML entry, described.
fn mutate_xml(rng: &mut Rng, xml: &mut Vec<u8>) -> String {
    const ATTRS: [&str; 12] = [
        "count",
        "uniqueCount",
        "r",
        "ref",
        "spans",
        "s",
        "t",
        "table:number-rows-repeated",
        "table:number-columns-repeated",
        "table:number-columns-spanned",
        "office:value",
        "office:date-value",
    ];
    const ELEMENTS: [(&str, &str); 6] = [
        ("<si>", "</si>"),
        ("<row ", "</row>"),
        ("<c ", "</c>"),
        ("<table:table-row", "</table:table-row>"),
        ("<table:table-cell ", "</table:table-cell>"),
        ("<sheet ", "/>"),
    ];
    match rng.below(8) {
        // An attribute given a number a reader may trust too much.
        0 | 1 => {
            let attr = *rng.pick(&ATTRS);
            let values = attribute_values(xml, attr);
            if values.is_empty() {
                return format!("no {attr} to change");
            }
            let at = *rng.pick(&values);
            let value = match attr {
                "r" | "ref" => rng
                    .pick(&[
                        "XFD1048576",
                        "A4294967296",
                        "ZZZZZZ1",
                        "A0",
                        "A1:XFD1048576",
                        "",
                    ])
                    .to_string(),
                "office:date-value" => rng
                    .pick(&["99999-13-45", "-4713-01-01", "2024-02-30T25:61:61"])
                    .to_string(),
                _ => rng.pick(&HUGE).to_string(),
            };
            splice(xml, at, value.as_bytes());
            format!("{attr}=\"{value}\"")
        }
        // A repeat added to a row or cell of an .ods.
        2 => {
            let (tag, attr) = *rng.pick(&[
                ("<table:table-row", "table:number-rows-repeated"),
                ("<table:table-cell", "table:number-columns-repeated"),
            ]);
            let places = find_all(xml, tag.as_bytes());
            if places.is_empty() {
                return format!("no {tag}");
            }
            let at = *rng.pick(&places) + tag.len();
            let value = *rng.pick(&HUGE);
            splice(xml, (at, at), format!(" {attr}=\"{value}\"").as_bytes());
            format!("{tag} {attr}=\"{value}\"")
        }
        // An element repeated many times.
        3 => {
            let (open, close) = *rng.pick(&ELEMENTS);
            let starts = find_all(xml, open.as_bytes());
            if starts.is_empty() {
                return format!("no {open}");
            }
            let start = *rng.pick(&starts);
            let Some(len) = find(&xml[start..], close.as_bytes()) else {
                return format!("{open} not closed");
            };
            let end = start + len + close.len();
            let times = *rng.pick(&[2usize, 1000, 20_000]);
            let element = xml[start..end].to_vec();
            let copies: Vec<u8> = element
                .iter()
                .copied()
                .cycle()
                .take(element.len() * times)
                .collect();
            splice(xml, (start, end), &copies);
            format!("{open}…{close} × {times}")
        }
        // Text too long for a cell.
        4 => {
            let (open, close) = *rng.pick(&[
                ("<t>", "</t>"),
                ("<t xml:space=\"preserve\">", "</t>"),
                ("<v>", "</v>"),
                ("<text:p>", "</text:p>"),
            ]);
            let starts = find_all(xml, open.as_bytes());
            if starts.is_empty() {
                return format!("no {open}");
            }
            let start = *rng.pick(&starts) + open.len();
            let Some(len) = find(&xml[start..], close.as_bytes()) else {
                return format!("{open} not closed");
            };
            let text = match rng.below(3) {
                0 => "é".repeat(40_000),
                1 => "1e308".to_string(),
                _ => "99999999999999999999999999".to_string(),
            };
            splice(xml, (start, start + len), text.as_bytes());
            format!("{open} holds {} bytes", text.len())
        }
        // Nesting deep enough to exhaust a recursive reader.
        5 => {
            let tags = find_all(xml, b">");
            if tags.is_empty() {
                return "no tag".into();
            }
            let at = *rng.pick(&tags) + 1;
            let depth = *rng.pick(&[1000usize, 20_000]);
            let nest = "<a>".repeat(depth);
            splice(xml, (at, at), nest.as_bytes());
            format!("{depth} nested elements")
        }
        // Cut short.
        6 => {
            let keep = rng.below(xml.len());
            xml.truncate(keep);
            format!("cut at {keep} bytes")
        }
        // A few bytes changed.
        _ => {
            let n = 1 + rng.below(8);
            for _ in 0..n {
                let at = rng.below(xml.len());
                xml[at] = *rng.pick(&[b'<', b'>', b'"', b'&', 0, b'9', 0xFF]);
            }
            format!("{n} bytes changed")
        }
    }
}

/// The records of an `.xlsb` part: (type, body), with their lengths.
fn xlsb_records(bin: &[u8]) -> Vec<(u32, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    let varint = |at: &mut usize, max: usize| -> Option<u32> {
        let mut v = 0u32;
        for i in 0..max {
            let b = *bin.get(*at)?;
            *at += 1;
            v |= u32::from(b & 0x7F) << (7 * i);
            if b & 0x80 == 0 {
                break;
            }
        }
        Some(v)
    };
    while at < bin.len() {
        let (Some(typ), Some(len)) = (varint(&mut at, 2), varint(&mut at, 4)) else {
            break;
        };
        let end = (at + len as usize).min(bin.len());
        out.push((typ, bin[at..end].to_vec()));
        at = end;
    }
    out
}

fn xlsb_write(records: &[(u32, Vec<u8>)], lengths: &[Option<u32>]) -> Vec<u8> {
    let mut out = Vec::new();
    let varint = |out: &mut Vec<u8>, mut v: u32, max: usize| {
        for i in 0..max {
            let more = v >= 0x80 && i + 1 < max;
            out.push((v & 0x7F) as u8 | if more { 0x80 } else { 0 });
            v >>= 7;
            if !more {
                break;
            }
        }
    };
    for (i, (typ, body)) in records.iter().enumerate() {
        varint(&mut out, *typ, 2);
        varint(
            &mut out,
            lengths
                .get(i)
                .copied()
                .flatten()
                .unwrap_or(body.len() as u32),
            4,
        );
        out.extend(body);
    }
    out
}

fn set_u32(body: &mut [u8], at: usize, value: u32) -> bool {
    match body.get_mut(at..at + 4) {
        Some(b) => {
            b.copy_from_slice(&value.to_le_bytes());
            true
        }
        None => false,
    }
}

/// One mutation of an `.xlsb` binary part, described.
fn mutate_xlsb(rng: &mut Rng, bin: &mut Vec<u8>) -> String {
    let mut records = xlsb_records(bin);
    if records.is_empty() {
        return "no records".into();
    }
    let mut lengths = vec![None; records.len()];
    let big = *rng.pick(&[0x7FFF_FFFFu32, 0xFFFF_FFFF, 1_048_576, 16_384, 5_000_001]);
    let of_type = |records: &[(u32, Vec<u8>)], types: &[u32]| -> Vec<usize> {
        (0..records.len())
            .filter(|i| types.contains(&records[*i].0))
            .collect()
    };
    let what = match rng.below(7) {
        // BrtBeginSst's counts.
        0 => {
            let at = of_type(&records, &[0x9F]);
            let Some(&i) = at.first() else {
                return "no SST".into();
            };
            let which = rng.below(2) * 4;
            set_u32(&mut records[i].1, which, big);
            format!("SST count {big}")
        }
        // BrtWsDim, a row header, a cell's column or shared-string index.
        1 => {
            let at = of_type(&records, &[0x94, 0x00, 0x01, 0x02, 0x05, 0x06, 0x07, 0x12]);
            if at.is_empty() {
                return "no cell records".into();
            }
            let i = *rng.pick(&at);
            let field = if records[i].0 == 0x12 {
                4
            } else {
                4 * rng.below(3)
            };
            set_u32(&mut records[i].1, field, big);
            format!("record {:#x} field {field} = {big}", records[i].0)
        }
        // A string's declared length.
        2 => {
            let at = of_type(&records, &[0x13, 0x06, 0x11]);
            if at.is_empty() {
                return "no strings".into();
            }
            let i = *rng.pick(&at);
            let field = match records[i].0 {
                0x13 => 1,
                0x06 => 8,
                _ => 4,
            };
            set_u32(&mut records[i].1, field, big);
            format!("string length {big} in record {:#x}", records[i].0)
        }
        // A record's length, off by some.
        3 => {
            let i = rng.below(records.len());
            let len = records[i].1.len() as u32;
            let new = *rng.pick(&[0, len.saturating_sub(1), len + 1, len + 100, 0x0FFF_FFFF]);
            lengths[i] = Some(new);
            format!("record {:#x} length {len} → {new}", records[i].0)
        }
        // A record repeated.
        4 => {
            let i = rng.below(records.len());
            let times = *rng.pick(&[2usize, 1000, 20_000]);
            let copy = records[i].clone();
            records.splice(i..i, std::iter::repeat_n(copy, times - 1));
            lengths = vec![None; records.len()];
            format!("record {:#x} × {times}", records[i].0)
        }
        // Cut short.
        5 => {
            let bytes = xlsb_write(&records, &lengths);
            let keep = rng.below(bytes.len());
            *bin = bytes[..keep].to_vec();
            return format!("cut at {keep} bytes");
        }
        _ => {
            let i = rng.below(records.len());
            records.remove(i);
            lengths.pop();
            "a record removed".into()
        }
    };
    *bin = xlsb_write(&records, &lengths);
    what
}

/// The records of a BIFF stream: (type, body).
fn biff_records(stream: &[u8]) -> Vec<(u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut at = 0;
    while at + 4 <= stream.len() {
        let typ = u16::from_le_bytes([stream[at], stream[at + 1]]);
        let len = usize::from(u16::from_le_bytes([stream[at + 2], stream[at + 3]]));
        let end = (at + 4 + len).min(stream.len());
        out.push((typ, stream[at + 4..end].to_vec()));
        at = end;
    }
    out
}

/// The BIFF records back into a stream; BOUNDSHEET positions follow the
/// sheets they pointed to, unless `keep_positions`.
fn biff_write(
    original: &[(u16, Vec<u8>)],
    records: &[(u16, Vec<u8>)],
    keep_positions: bool,
) -> Vec<u8> {
    let _ = original;
    let mut out: Vec<u8> = records
        .iter()
        .flat_map(|(t, b)| workbooks::record(*t, b))
        .collect();
    if keep_positions {
        return out;
    }
    // Sheet BOFs (after the globals' EOF) in order, and BOUNDSHEETs in order.
    let mut at = 0;
    let mut offsets = Vec::new();
    for (t, b) in records {
        offsets.push((at, *t));
        at += 4 + b.len();
    }
    let globals_end = offsets
        .iter()
        .position(|(_, t)| *t == 0x000A)
        .unwrap_or(offsets.len());
    let sheet_starts: Vec<usize> = offsets[globals_end..]
        .iter()
        .filter(|(_, t)| *t == 0x0809)
        .map(|(o, _)| *o)
        .collect();
    let bound: Vec<usize> = offsets[..globals_end]
        .iter()
        .filter(|(_, t)| *t == 0x0085)
        .map(|(o, _)| *o)
        .collect();
    for (b, s) in bound.iter().zip(sheet_starts) {
        out[b + 4..b + 8].copy_from_slice(&(s as u32).to_le_bytes());
    }
    out
}

/// One mutation of a BIFF stream, described.
fn mutate_biff(rng: &mut Rng, stream: &mut Vec<u8>) -> String {
    let original = biff_records(stream);
    let mut records = original.clone();
    let of_type = |records: &[(u16, Vec<u8>)], types: &[u16]| -> Vec<usize> {
        (0..records.len())
            .filter(|i| types.contains(&records[*i].0))
            .collect()
    };
    let big = *rng.pick(&[0xFFFF_FFFFu32, 0x7FFF_FFFF, 65_536, 1_048_576, 5_000_001]);
    let mut keep_positions = false;
    let what = match rng.below(8) {
        0 => {
            let Some(&i) = of_type(&records, &[0x00FC]).first() else {
                return "no SST".into();
            };
            let field = 4 * rng.below(2);
            set_u32(&mut records[i].1, field, big);
            format!("SST count {big}")
        }
        1 => {
            let at = of_type(&records, &[0x0200]);
            let Some(&i) = at.first() else {
                return "no DIMENSIONS".into();
            };
            let field = 4 * rng.below(2);
            set_u32(&mut records[i].1, field, big);
            format!("DIMENSIONS field {field} = {big}")
        }
        // A cell moved to a far row or column, or naming a string that is not there.
        2 => {
            let at = of_type(&records, &[0x00FD, 0x0203, 0x0204, 0x027E, 0x00BD, 0x0006]);
            if at.is_empty() {
                return "no cells".into();
            }
            let i = *rng.pick(&at);
            let (field, value) = match rng.below(3) {
                0 => (0, 0xFFFFu16),
                1 => (2, *rng.pick(&[0x00FFu16, 0x4000, 0xFFFF])),
                _ => (6, 0xFFFF),
            };
            if let Some(b) = records[i].1.get_mut(field..field + 2) {
                b.copy_from_slice(&value.to_le_bytes());
            }
            format!("record {:#06x} field {field} = {value}", records[i].0)
        }
        // A sheet position pointing elsewhere.
        3 => {
            let at = of_type(&records, &[0x0085]);
            let Some(&i) = at.first() else {
                return "no BOUNDSHEET".into();
            };
            let pos = *rng.pick(&[0u32, 3, 100, 0xFFFF_FFFF, 1 << 20]);
            set_u32(&mut records[i].1, 0, pos);
            keep_positions = true;
            format!("BOUNDSHEET at {pos}")
        }
        // A sheet named many times over.
        4 => {
            let at = of_type(&records, &[0x0085]);
            let Some(&i) = at.first() else {
                return "no BOUNDSHEET".into();
            };
            let times = *rng.pick(&[20usize, 2000]);
            let mut out = biff_write(&original, &records, false);
            let mut fresh = biff_records(&out);
            let copy = fresh[i].clone();
            fresh.splice(i..i, std::iter::repeat_n(copy, times - 1));
            // Every copy points where the first did, shifted by the copies.
            let shift = (times - 1) * (4 + fresh[i].1.len());
            for r in fresh.iter_mut().filter(|r| r.0 == 0x0085) {
                let pos = u32::from_le_bytes([r.1[0], r.1[1], r.1[2], r.1[3]]);
                r.1[..4].copy_from_slice(&(pos + shift as u32).to_le_bytes());
            }
            out = fresh
                .iter()
                .flat_map(|(t, b)| workbooks::record(*t, b))
                .collect();
            *stream = out;
            return format!("BOUNDSHEET × {times}");
        }
        // A string's character count past its record.
        5 => {
            let at = of_type(&records, &[0x00FC, 0x0204, 0x0085]);
            if at.is_empty() {
                return "no strings".into();
            }
            let i = *rng.pick(&at);
            let field = match records[i].0 {
                0x00FC => 8,
                0x0204 => 6,
                _ => 6,
            };
            if let Some(b) = records[i].1.get_mut(field..field + 2) {
                b.copy_from_slice(&0xFFFFu16.to_le_bytes());
            }
            format!("string length 65535 in record {:#06x}", records[i].0)
        }
        // A record's length field off by some.
        6 => {
            let mut out = biff_write(&original, &records, false);
            let starts: Vec<usize> = {
                let mut at = 0;
                let mut s = Vec::new();
                while at + 4 <= out.len() {
                    s.push(at);
                    at += 4 + usize::from(u16::from_le_bytes([out[at + 2], out[at + 3]]));
                }
                s
            };
            let at = *rng.pick(&starts);
            let len = u16::from_le_bytes([out[at + 2], out[at + 3]]);
            let new = *rng.pick(&[0u16, len.wrapping_sub(1), len + 1, 0xFFFF]);
            out[at + 2..at + 4].copy_from_slice(&new.to_le_bytes());
            *stream = out;
            return format!("record length {len} → {new}");
        }
        _ => {
            let keep = rng.below(stream.len());
            stream.truncate(keep);
            return format!("cut at {keep} bytes");
        }
    };
    *stream = biff_write(&original, &records, keep_positions);
    what
}

/// The `Workbook` stream of an `.xls`.
fn xls_stream(bytes: &[u8]) -> Vec<u8> {
    let mut ole = cfb::CompoundFile::open(std::io::Cursor::new(bytes.to_vec())).unwrap();
    let mut stream = Vec::new();
    std::io::Read::read_to_end(&mut ole.open_stream("/Workbook").unwrap(), &mut stream).unwrap();
    stream
}

/// `stream` in a compound file written by the `cfb` crate.
fn xls_with(stream: &[u8]) -> Vec<u8> {
    let mut ole = cfb::CompoundFile::create(std::io::Cursor::new(Vec::new())).unwrap();
    std::io::Write::write_all(&mut ole.create_stream("/Workbook").unwrap(), stream).unwrap();
    ole.flush().unwrap();
    ole.into_inner().into_inner()
}

/// One fuzz case: a file, what was done to it, and what must follow.
struct Case {
    name: String,
    what: String,
    bytes: Vec<u8>,
    /// For a case past a limit: the flag its refusal must name.
    refused_by: Option<&'static str>,
}

/// Runs the binary on `case`; returns a description of what went wrong.
fn check(dir: &Path, case: &Case) -> Result<(f64, f64), String> {
    use std::os::unix::process::{CommandExt, ExitStatusExt};
    let path = dir.join(&case.name);
    std::fs::write(&path, &case.bytes).unwrap();
    // Nothing is sent: a dry run needs no server.
    let mut cmd = common::command_for("http://127.0.0.1:9", common::DEFAULT_ANON_KEY, dir);
    cmd.args(["--json", "import", "--dry-run", path.to_str().unwrap()])
        .envs(LIMITS);
    // A runaway loop ends by SIGXCPU (a signal, so the case fails) instead
    // of hanging the suite.
    // SAFETY: setrlimit only, which is async-signal-safe and allocates nothing.
    unsafe {
        cmd.pre_exec(|| {
            let cpu = libc::rlimit {
                rlim_cur: 20,
                rlim_max: 20,
            };
            libc::setrlimit(libc::RLIMIT_CPU, &cpu);
            Ok(())
        });
    }
    let run = common::output_measured(cmd, 2 << 30);
    let stderr = common::stderr(&run.output);
    let stdout = common::stdout(&run.output);
    let seconds = run.elapsed.as_secs_f64();
    let problem = if let Some(signal) = run.output.status.signal() {
        Some(format!("died by signal {signal}"))
    } else if stderr.contains("panicked") {
        Some("printed a panic".to_string())
    } else if run.peak_mib > CASE_MIB {
        Some(format!("peak memory {:.0} MiB", run.peak_mib))
    } else if seconds > CASE_SECONDS {
        Some(format!("took {seconds:.1} s"))
    } else {
        match (run.output.status.code(), case.refused_by) {
            (Some(1), Some(flag)) if stderr.contains(flag) && stderr.contains(&case.name) => None,
            (code, Some(flag)) => Some(format!("exit {code:?}, not refused by {flag}")),
            (Some(0), None) => serde_json::from_str::<serde_json::Value>(&stdout)
                .ok()
                .filter(|v| v["rows"].is_u64())
                .is_none()
                .then(|| "exit 0 without a JSON report".to_string()),
            (Some(1 | 4), None) => (!stderr.starts_with("error: ") || !stderr.contains(&case.name))
                .then(|| "an error that does not name the file".to_string()),
            (code, None) => Some(format!("exit {code:?}")),
        }
    };
    match problem {
        None => Ok((seconds, run.peak_mib)),
        Some(p) => {
            // Kept for a look: the file that failed, under the target dir.
            let keep = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("fuzz-{}", case.name));
            let _ = std::fs::write(&keep, &case.bytes);
            Err(format!(
                "{} ({}): {p}; kept as {}\nstderr: {}",
                case.name,
                case.what,
                keep.display(),
                stderr.chars().take(600).collect::<String>()
            ))
        }
    }
}

/// Mutated copies of each fixture: `per_format` cases from seed `seed`.
fn mutation_cases(seed: u64, per_format: usize) -> Vec<Case> {
    let mut cases = Vec::new();
    let zipped = |ext: &str, targets: &[&str]| {
        (
            ext.to_string(),
            unzip(&fixture(ext)),
            targets.iter().map(|t| t.to_string()).collect::<Vec<_>>(),
        )
    };
    let archives = [
        zipped(
            "xlsx",
            &[
                "xl/sharedStrings.xml",
                "xl/worksheets/sheet1.xml",
                "xl/workbook.xml",
                "xl/styles.xml",
            ],
        ),
        zipped(
            "xlsm",
            &[
                "xl/sharedStrings.xml",
                "xl/worksheets/sheet1.xml",
                "[Content_Types].xml",
                "xl/_rels/workbook.xml.rels",
            ],
        ),
        zipped(
            "ods",
            &["content.xml", "styles.xml", "META-INF/manifest.xml"],
        ),
        zipped(
            "xlsb",
            &[
                "xl/sharedStrings.bin",
                "xl/worksheets/sheet1.bin",
                "xl/workbook.bin",
                "xl/styles.bin",
            ],
        ),
    ];
    for (ext, entries, targets) in &archives {
        for n in 0..per_format {
            let case_seed = seed ^ (n as u64) << 8 ^ fnv(ext);
            let mut rng = Rng(case_seed);
            let mut entries = entries.clone();
            // Most cases mutate the parts a reader trusts; a few mutate twice.
            let mut what = Vec::new();
            for _ in 0..1 + usize::from(rng.below(4) == 0) {
                let target = rng.pick(targets).clone();
                let Some(entry) = entries.iter_mut().find(|(name, _)| *name == target) else {
                    continue;
                };
                let done = if target.ends_with(".bin") {
                    mutate_xlsb(&mut rng, &mut entry.1)
                } else {
                    mutate_xml(&mut rng, &mut entry.1)
                };
                what.push(format!("{target}: {done}"));
            }
            cases.push(Case {
                name: format!("{ext}-{case_seed:016x}.{ext}"),
                what: what.join("; "),
                bytes: rezip(&entries),
                refused_by: None,
            });
        }
    }
    let stream = xls_stream(&fixture("xls"));
    for n in 0..per_format {
        let case_seed = seed ^ (n as u64) << 8 ^ fnv("xls");
        let mut rng = Rng(case_seed);
        let mut mutated = stream.clone();
        let what = mutate_biff(&mut rng, &mut mutated);
        cases.push(Case {
            name: format!("xls-{case_seed:016x}.xls"),
            what: format!("Workbook: {what}"),
            bytes: xls_with(&mutated),
            refused_by: None,
        });
    }
    let tsv = fixture("tsv");
    for n in 0..per_format / 2 {
        let case_seed = seed ^ (n as u64) << 8 ^ fnv("tsv");
        let mut rng = Rng(case_seed);
        let mut text = tsv.clone();
        let what = match rng.below(4) {
            0 => {
                let at = rng.below(text.len());
                let quote = b"\"".repeat(1 + rng.below(3));
                splice(&mut text, (at, at), &quote);
                "a stray quote".to_string()
            }
            1 => {
                let at = rng.below(text.len());
                splice(&mut text, (at, at), &[0xFF, 0xFE, 0, 0xC3]);
                "invalid UTF-8".to_string()
            }
            2 => {
                let at = rng.below(text.len());
                splice(&mut text, (at, at), "\t".repeat(30_000).as_bytes());
                "30 000 tabs".to_string()
            }
            _ => {
                let keep = rng.below(text.len());
                text.truncate(keep);
                format!("cut at {keep}")
            }
        };
        cases.push(Case {
            name: format!("tsv-{case_seed:016x}.tsv"),
            what,
            bytes: text,
            refused_by: None,
        });
    }
    cases
}

fn fnv(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// One case past each limit, in each format the limit guards: the
/// refusal must name the limit's flag. A limit removed from the reader
/// makes its case fail (by the missing refusal, or by time or memory).
fn limit_cases() -> Vec<Case> {
    let mut cases = Vec::new();
    let mut add = |name: &str, what: &str, bytes: Vec<u8>, flag: &'static str| {
        cases.push(Case {
            name: name.into(),
            what: what.into(),
            bytes,
            refused_by: Some(flag),
        })
    };
    let with_entry = |ext: &str, target: &str, change: &dyn Fn(&mut Vec<u8>)| {
        let mut entries = unzip(&fixture(ext));
        let entry = entries.iter_mut().find(|(n, _)| n == target).unwrap();
        change(&mut entry.1);
        rezip(&entries)
    };
    let replace = |xml: &mut Vec<u8>, from: &str, to: &str| {
        let at = find(xml, from.as_bytes()).unwrap_or_else(|| panic!("{from} not found"));
        splice(xml, (at, at + from.len()), to.as_bytes());
    };

    // Entry size: content.xml and sheet1.xml grown past 16 MiB.
    for (ext, target) in [
        ("ods", "content.xml"),
        ("xlsx", "xl/worksheets/sheet1.xml"),
        ("xlsb", "xl/worksheets/sheet1.bin"),
    ] {
        let bytes = with_entry(ext, target, &|e| {
            e.extend(std::iter::repeat_n(b' ', 5 << 20))
        });
        add(
            &format!("limit-entry.{ext}"),
            "an entry of 5 MiB more",
            bytes,
            "--max-entry-size",
        );
    }
    // Shared strings: declared, and present.
    let bytes = with_entry("xlsx", "xl/sharedStrings.xml", &|e| {
        let values = attribute_values(e, "uniqueCount");
        splice(e, values[0], b"9000000000");
    });
    add(
        "limit-sst-declared.xlsx",
        "uniqueCount=9000000000",
        bytes,
        "--max-shared-strings",
    );
    let bytes = with_entry("xlsx", "xl/sharedStrings.xml", &|e| {
        replace(
            e,
            "<si>",
            &format!("{}<si>", "<si><t>x</t></si>".repeat(15_000)),
        );
        for attr in ["count", "uniqueCount"] {
            let values = attribute_values(e, attr);
            splice(e, values[0], b"1");
        }
    });
    add(
        "limit-sst-present.xlsx",
        "15 000 strings, 1 declared",
        bytes,
        "--max-shared-strings",
    );
    let bytes = with_entry("xlsb", "xl/sharedStrings.bin", &|e| {
        let mut records = xlsb_records(e);
        set_u32(&mut records[0].1, 4, 9_000_000);
        *e = xlsb_write(&records, &[]);
    });
    add(
        "limit-sst-declared.xlsb",
        "BrtBeginSst declaring 9 000 000",
        bytes,
        "--max-shared-strings",
    );
    let mut stream = xls_stream(&fixture("xls"));
    let mut records = biff_records(&stream);
    let sst = records.iter().position(|r| r.0 == 0x00FC).unwrap();
    set_u32(&mut records[sst].1, 4, 4_000_000_000);
    stream = biff_write(&[], &records, true);
    add(
        "limit-sst-declared.xls",
        "SST declaring 4 000 000 000",
        xls_with(&stream),
        "--max-shared-strings",
    );
    // Cells: an .ods row repeated, an .xls declaring every cell, a CSV.
    let bytes = with_entry("ods", "content.xml", &|e| {
        replace(
            e,
            "<table:table-row",
            "<table:table-row table:number-rows-repeated=\"1000000\"",
        );
    });
    add(
        "limit-cells.ods",
        "a row repeated 1 000 000 times",
        bytes,
        "--max-cells",
    );
    let mut records = biff_records(&xls_stream(&fixture("xls")));
    let dims = records.iter().position(|r| r.0 == 0x0200).unwrap();
    set_u32(&mut records[dims].1, 4, 1_048_576);
    add(
        "limit-cells.xls",
        "DIMENSIONS of 1 048 576 rows",
        xls_with(&biff_write(&[], &records, true)),
        "--max-cells",
    );
    let bytes = with_entry("xlsx", "xl/worksheets/sheet1.xml", &|e| {
        let start = find(e, b"<sheetData>").unwrap() + "<sheetData>".len();
        let end = find(e, b"</sheetData>").unwrap();
        let mut rows = String::new();
        for n in 1..=13_000u32 {
            rows += &format!(
                r#"<row r="{n}"><c r="A{n}" t="s"><v>0</v></c><c r="B{n}" t="s"><v>1</v></c></row>"#
            );
        }
        splice(e, (start, end), rows.as_bytes());
    });
    add("limit-cells.xlsx", "26 000 cells", bytes, "--max-cells");
    // .xlsb: a row of 30 000 cells in the short form, read through the
    // full-form copy.
    let bytes = with_entry("xlsb", "xl/worksheets/sheet1.bin", &|e| {
        let mut records = xlsb_records(e);
        let short = records.iter().position(|r| r.0 == 0x12).unwrap();
        let copy = records[short].clone();
        records.splice(short..short, std::iter::repeat_n(copy, 30_000));
        *e = xlsb_write(&records, &[]);
    });
    add(
        "limit-cells.xlsb",
        "30 000 short cell records in a row",
        bytes,
        "--max-cells",
    );
    let mut csv = Vec::new();
    for i in 0..11_000 {
        csv.extend(format!("Org {i}\tp{i}@example.fr\n").as_bytes());
    }
    add("limit-cells.tsv", "22 000 cells", csv, "--max-cells");
    // Cell length: 40 000 characters in one cell.
    let long = "é".repeat(40_000);
    let bytes = with_entry("xlsx", "xl/sharedStrings.xml", &|e| {
        replace(e, "Société Générale", &long)
    });
    add(
        "limit-cell-length.xlsx",
        "a 40 000-character shared string",
        bytes,
        "--max-cell-length",
    );
    let bytes = with_entry("ods", "content.xml", &|e| {
        replace(e, "Société Générale", &long)
    });
    add(
        "limit-cell-length.ods",
        "a 40 000-character cell",
        bytes,
        "--max-cell-length",
    );
    let mut tsv = fixture("tsv");
    splice(&mut tsv, (0, 0), format!("{long}\tx@y.fr\n").as_bytes());
    add(
        "limit-cell-length.tsv",
        "a 40 000-character cell",
        tsv,
        "--max-cell-length",
    );
    // Text repeated: an .ods cell of 30 000 characters repeated 1 000 times,
    // an .xls shared string of 30 000 characters in 1 000 cells.
    let cell = "y".repeat(30_000);
    let bytes = with_entry("ods", "content.xml", &|e| {
        let text = "<text:p>Société Générale</text:p>";
        let at = find(e, text.as_bytes()).unwrap();
        splice(
            e,
            (at, at + text.len()),
            format!("<text:p>{cell}</text:p>").as_bytes(),
        );
        let tag = "<table:table-cell";
        let open = e[..at]
            .windows(tag.len())
            .rposition(|w| w == tag.as_bytes())
            .unwrap()
            + tag.len();
        splice(e, (open, open), b" table:number-columns-repeated=\"1000\"");
    });
    add(
        "limit-text.ods",
        "a 30 000-character cell repeated 1 000 times",
        bytes,
        "--max-entry-size",
    );
    let mut cells = Vec::new();
    for row in 0..1_000u16 {
        cells.extend(workbooks::label_sst(row, 0, 0));
    }
    let stream = workbooks::workbook(&workbooks::sst((1, 1), &[&cell]), &[cells], &[("S", 0)]);
    add(
        "limit-text.xls",
        "one 30 000-character string in 1 000 cells",
        xls_with(&stream),
        "--max-entry-size",
    );
    cases
}

#[test]
fn each_limit_refuses_a_file_past_it_in_each_format_it_guards() {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let cases = limit_cases();
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|case| match check(dir.path(), case) {
            Ok((seconds, mib)) => {
                eprintln!(
                    "{}: refused in {seconds:.2} s, peak {mib:.0} MiB",
                    case.name
                );
                None
            }
            Err(e) => Some(e),
        })
        .collect();
    eprintln!(
        "{} cases in {:.1} s",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Runs the mutation cases of one format.
fn fuzz(ext: &str) {
    let dir = tempfile::tempdir().unwrap();
    let started = std::time::Instant::now();
    let cases: Vec<Case> = mutation_cases(SEED, CASES_PER_FORMAT)
        .into_iter()
        .filter(|c| c.name.ends_with(&format!(".{ext}")))
        .collect();
    assert!(!cases.is_empty());
    let mut failures = Vec::new();
    let (mut slowest, mut heaviest) = (0f64, 0f64);
    for case in &cases {
        match check(dir.path(), case) {
            Ok((seconds, mib)) => {
                slowest = slowest.max(seconds);
                heaviest = heaviest.max(mib);
            }
            Err(e) => failures.push(e),
        }
    }
    eprintln!(
        "{} mutated .{ext} files in {:.1} s; slowest {slowest:.2} s, peak {heaviest:.0} MiB",
        cases.len(),
        started.elapsed().as_secs_f64()
    );
    assert!(
        failures.is_empty(),
        "{} of {} cases failed:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n\n")
    );
}

const SEED: u64 = 0x6d61_696c_7379_6e63;
const CASES_PER_FORMAT: usize = 32;

#[test]
fn mutated_xlsx_ends_in_a_report_or_a_clear_error_within_bounds() {
    fuzz("xlsx");
}

#[test]
fn mutated_xlsm_ends_in_a_report_or_a_clear_error_within_bounds() {
    fuzz("xlsm");
}

#[test]
fn mutated_ods_ends_in_a_report_or_a_clear_error_within_bounds() {
    fuzz("ods");
}

#[test]
fn mutated_xlsb_ends_in_a_report_or_a_clear_error_within_bounds() {
    fuzz("xlsb");
}

#[test]
fn mutated_xls_ends_in_a_report_or_a_clear_error_within_bounds() {
    fuzz("xls");
}

#[test]
fn mutated_tsv_ends_in_a_report_or_a_clear_error_within_bounds() {
    fuzz("tsv");
}
