//! `.xls` workbooks built byte by byte, so that a test says exactly what a
//! file declares: BIFF8 records, the `Workbook` stream they make, and the
//! OLE compound file (MS-CFB, version 3, 512-byte sectors) around it, with
//! its layout at hand for a test that damages the container itself.
//! Shared by tests/it/import_hostile.rs and tests/it/import_fuzz.rs.

#![allow(dead_code)]

/// One BIFF record.
pub fn record(typ: u16, body: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(body.len() + 4);
    r.extend(typ.to_le_bytes());
    r.extend((body.len() as u16).to_le_bytes());
    r.extend(body);
    r
}

/// BOF of the globals (`0x0005`) or of a worksheet (`0x0010`).
pub fn bof(kind: u16) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(0x0600u16.to_le_bytes()); // BIFF8
    b.extend(kind.to_le_bytes());
    b.extend(0x0DBBu16.to_le_bytes()); // build
    b.extend(0x07CCu16.to_le_bytes()); // year
    b.extend([0u8; 8]); // history flags, lowest version
    record(0x0809, &b)
}

pub fn eof() -> Vec<u8> {
    record(0x000A, &[])
}

/// DIMENSIONS: rows `first..last_plus_one`, columns `first..last_plus_one`.
pub fn dimensions(rows: (u32, u32), cols: (u16, u16)) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(rows.0.to_le_bytes());
    b.extend(rows.1.to_le_bytes());
    b.extend(cols.0.to_le_bytes());
    b.extend(cols.1.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    record(0x0200, &b)
}

/// A cell naming shared string `index`.
pub fn label_sst(row: u16, col: u16, index: u32) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(row.to_le_bytes());
    b.extend(col.to_le_bytes());
    b.extend(0u16.to_le_bytes()); // XF
    b.extend(index.to_le_bytes());
    record(0x00FD, &b)
}

/// A cell holding its own text (8-bit characters).
pub fn label(row: u16, col: u16, text: &str) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(row.to_le_bytes());
    b.extend(col.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    b.extend((text.len() as u16).to_le_bytes());
    b.push(0); // 8-bit characters
    b.extend(text.as_bytes());
    record(0x0204, &b)
}

pub fn number(row: u16, col: u16, value: f64) -> Vec<u8> {
    let mut b = Vec::new();
    b.extend(row.to_le_bytes());
    b.extend(col.to_le_bytes());
    b.extend(0u16.to_le_bytes());
    b.extend(value.to_le_bytes());
    record(0x0203, &b)
}

/// The shared-strings table: `declared` (total, unique) and `strings`
/// (ASCII), split into `CONTINUE` records as Excel splits it.
pub fn sst(declared: (u32, u32), strings: &[&str]) -> Vec<u8> {
    const MAX: usize = 8224;
    let mut records: Vec<(u16, Vec<u8>)> = vec![(0x00FC, Vec::new())];
    let body =
        |records: &mut Vec<(u16, Vec<u8>)>| -> usize { MAX - records.last().unwrap().1.len() };
    records[0].1.extend(declared.0.to_le_bytes());
    records[0].1.extend(declared.1.to_le_bytes());
    for s in strings {
        if body(&mut records) < 4 {
            records.push((0x003C, Vec::new()));
        }
        let last = &mut records.last_mut().unwrap().1;
        last.extend((s.len() as u16).to_le_bytes());
        last.push(0);
        let mut rest = s.as_bytes();
        loop {
            let room = body(&mut records);
            let here = rest.len().min(room);
            records.last_mut().unwrap().1.extend(&rest[..here]);
            rest = &rest[here..];
            if rest.is_empty() {
                break;
            }
            // Characters go on in a CONTINUE record that starts with their flags.
            records.push((0x003C, vec![0]));
        }
    }
    records.iter().flat_map(|(t, b)| record(*t, b)).collect()
}

/// A `Workbook` stream: the globals (with `globals` records, e.g. an SST),
/// then each sheet's records between its BOF and EOF. `bound` lists the
/// BOUNDSHEET records: a name and the index of the sheet it points to (two
/// may point to one sheet).
pub fn workbook(globals: &[u8], sheets: &[Vec<u8>], bound: &[(&str, usize)]) -> Vec<u8> {
    let boundsheet = |pos: u32, name: &str| {
        let mut b = Vec::new();
        b.extend(pos.to_le_bytes());
        b.extend([0u8, 0u8]); // visible, worksheet
        b.push(name.len() as u8);
        b.push(0);
        b.extend(name.as_bytes());
        record(0x0085, &b)
    };
    let head_len = bof(0x0005).len()
        + bound
            .iter()
            .map(|(name, _)| boundsheet(0, name).len())
            .sum::<usize>()
        + globals.len()
        + eof().len();
    let mut starts = Vec::new();
    let mut pos = head_len;
    let mut bodies = Vec::new();
    for sheet in sheets {
        starts.push(pos as u32);
        let mut body = bof(0x0010);
        body.extend(sheet);
        body.extend(eof());
        pos += body.len();
        bodies.push(body);
    }
    let mut stream = bof(0x0005);
    for (name, index) in bound {
        stream.extend(boundsheet(starts[*index], name));
    }
    stream.extend(globals);
    stream.extend(eof());
    assert_eq!(stream.len(), head_len);
    for body in bodies {
        stream.extend(body);
    }
    stream
}

/// A workbook of one sheet "Contacts" whose rows are `(organisation, email)`.
pub fn contacts(rows: &[(&str, &str)]) -> Vec<u8> {
    let mut strings = Vec::new();
    let mut cells = dimensions((0, rows.len() as u32), (0, 2));
    for (i, (org, email)) in rows.iter().enumerate() {
        for (col, text) in [(0u16, org), (1, email)] {
            cells.extend(label_sst(i as u16, col, strings.len() as u32));
            strings.push(*text);
        }
    }
    let n = strings.len() as u32;
    workbook(&sst((n, n), &strings), &[cells], &[("Contacts", 0)])
}

pub const SECTOR: usize = 512;
pub const FREESECT: u32 = 0xFFFF_FFFF;
pub const ENDOFCHAIN: u32 = 0xFFFF_FFFE;
pub const FATSECT: u32 = 0xFFFF_FFFD;

/// A compound file and where its parts lie, for tests that damage it.
pub struct Ole {
    pub bytes: Vec<u8>,
    /// Sectors of the FAT, then of the directory, then of the stream.
    pub fat_sectors: Vec<u32>,
    pub dir_sector: u32,
    pub stream_sectors: Vec<u32>,
}

impl Ole {
    /// Byte offset of sector `id`.
    pub fn at(id: u32) -> usize {
        (id as usize + 1) * SECTOR
    }

    /// Sets FAT entry `id` (the sector after `id` in its chain).
    pub fn set_fat(&mut self, id: u32, next: u32) {
        let fat_sector = self.fat_sectors[id as usize / 128];
        let at = Self::at(fat_sector) + (id as usize % 128) * 4;
        self.bytes[at..at + 4].copy_from_slice(&next.to_le_bytes());
    }

    /// Byte offset of directory entry `i`.
    pub fn entry(&self, i: usize) -> usize {
        Self::at(self.dir_sector) + i * 128
    }

    /// Sets the size directory entry `i` declares.
    pub fn set_size(&mut self, i: usize, size: u32) {
        let at = self.entry(i) + 120;
        self.bytes[at..at + 4].copy_from_slice(&size.to_le_bytes());
    }

    pub fn set_header_u32(&mut self, offset: usize, value: u32) {
        self.bytes[offset..offset + 4].copy_from_slice(&value.to_le_bytes());
    }
}

fn dir_entry(name: &str, kind: u8, child: u32, start: u32, size: u32) -> Vec<u8> {
    let mut e = vec![0u8; 128];
    let units: Vec<u16> = name.encode_utf16().chain([0]).collect();
    for (i, u) in units.iter().enumerate() {
        e[i * 2..i * 2 + 2].copy_from_slice(&u.to_le_bytes());
    }
    e[64..66].copy_from_slice(&((units.len() * 2) as u16).to_le_bytes());
    e[66] = kind;
    e[67] = 1; // black
    e[68..72].copy_from_slice(&FREESECT.to_le_bytes()); // left
    e[72..76].copy_from_slice(&FREESECT.to_le_bytes()); // right
    e[76..80].copy_from_slice(&child.to_le_bytes());
    e[116..120].copy_from_slice(&start.to_le_bytes());
    e[120..124].copy_from_slice(&size.to_le_bytes());
    e
}

/// `stream` as the `Workbook` stream of a compound file, padded to 4096
/// bytes (so that it lives in regular sectors), then to `min_len` bytes of
/// file with unused sectors.
pub fn compound_file(stream: &[u8], min_len: usize) -> Ole {
    let mut stream = stream.to_vec();
    if stream.len() < 4096 {
        stream.resize(4096, 0);
    }
    let stream_count = stream.len().div_ceil(SECTOR);
    let pad_count = min_len.saturating_sub(SECTOR * (stream_count + 2)) / SECTOR;
    // FAT sectors, the directory sector, the stream, the padding.
    let mut fat_count = 1;
    while fat_count * 128 < fat_count + 1 + stream_count + pad_count {
        fat_count += 1;
    }
    assert!(fat_count <= 109, "a stream this long needs a DIFAT chain");
    let total = fat_count + 1 + stream_count + pad_count;
    let fat_sectors: Vec<u32> = (0..fat_count as u32).collect();
    let dir_sector = fat_count as u32;
    let stream_sectors: Vec<u32> = (0..stream_count as u32)
        .map(|i| dir_sector + 1 + i)
        .collect();
    let mut fat = vec![FREESECT; fat_count * 128];
    for id in &fat_sectors {
        fat[*id as usize] = FATSECT;
    }
    fat[dir_sector as usize] = ENDOFCHAIN;
    for pair in stream_sectors.windows(2) {
        fat[pair[0] as usize] = pair[1];
    }
    fat[*stream_sectors.last().unwrap() as usize] = ENDOFCHAIN;

    let mut header = vec![0u8; SECTOR];
    header[..8].copy_from_slice(&[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    header[24..26].copy_from_slice(&0x003Eu16.to_le_bytes());
    header[26..28].copy_from_slice(&3u16.to_le_bytes());
    header[28..30].copy_from_slice(&0xFFFEu16.to_le_bytes());
    header[30..32].copy_from_slice(&9u16.to_le_bytes());
    header[32..34].copy_from_slice(&6u16.to_le_bytes());
    header[44..48].copy_from_slice(&(fat_count as u32).to_le_bytes());
    header[48..52].copy_from_slice(&dir_sector.to_le_bytes());
    header[56..60].copy_from_slice(&4096u32.to_le_bytes());
    header[60..64].copy_from_slice(&ENDOFCHAIN.to_le_bytes());
    header[68..72].copy_from_slice(&ENDOFCHAIN.to_le_bytes());
    for i in 0..109 {
        let id = fat_sectors.get(i).copied().unwrap_or(FREESECT);
        header[76 + i * 4..80 + i * 4].copy_from_slice(&id.to_le_bytes());
    }

    let mut bytes = header;
    for v in &fat {
        bytes.extend(v.to_le_bytes());
    }
    bytes.extend(dir_entry("Root Entry", 5, 1, ENDOFCHAIN, 0));
    bytes.extend(dir_entry(
        "Workbook",
        2,
        FREESECT,
        stream_sectors[0],
        stream.len() as u32,
    ));
    bytes.extend(vec![0u8; 256]);
    bytes.extend(&stream);
    bytes.resize(SECTOR * (total + 1), 0);
    Ole {
        bytes,
        fat_sectors,
        dir_sector,
        stream_sectors,
    }
}
