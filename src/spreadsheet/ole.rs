//! The OLE compound file (MS-CFB) around an `.xls` workbook, read the way
//! calamine reads it, with every structure bounded, so that
//! [`super::limits`] checks the very bytes calamine will parse.
//!
//! calamine follows a file's sector chains as the file says: a chain that
//! loops grows until memory runs out, a DIFAT chain may list one FAT sector
//! thousands of times (each copy read again), a stream may claim 4 GiB.
//! Here each sector of a chain is read once, the FAT names each of its
//! sectors once, and nothing is read past the end of the file; a file that
//! breaks one of these rules is damaged and is refused before calamine reads
//! it. The stream is looked up as calamine looks it up (the first directory
//! entry named `Workbook`, else `Book`, in any letter case), not through the
//! directory tree, which calamine does not use.
//!
//! It finds one stream; it is not a compound-file library.

use std::collections::HashSet;
use std::fs::File;
use std::io::{Read, Seek, SeekFrom};
use std::path::Path;

use crate::t;

const SIGNATURE: [u8; 8] = [0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1];
const RESERVED: u32 = 0xFFFF_FFFA;
const DIFSECT: u32 = 0xFFFF_FFFC;
const ENDOFCHAIN: u32 = 0xFFFF_FFFE;
const MINI_SECTOR: usize = 64;
/// Streams shorter than this live in the mini stream.
const MINI_CUTOFF: u64 = 4096;

/// What [`workbook_stream`] found.
#[derive(Debug)]
pub enum Stream {
    /// Not a compound file, or one calamine refuses by its header: calamine
    /// says so in its own words.
    NotOle,
    /// No `Workbook` or `Book` stream: calamine says so.
    Missing,
    /// A structure calamine would follow without bound, or past the file.
    Damaged(String),
    /// The stream is longer than the limit given.
    TooLarge,
    Found(Vec<u8>),
}

fn u16_at(b: &[u8], i: usize) -> u16 {
    u16::from_le_bytes([b[i], b[i + 1]])
}

fn u32_at(b: &[u8], i: usize) -> u32 {
    u32::from_le_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]])
}

fn u32s(b: &[u8]) -> impl Iterator<Item = u32> + '_ {
    b.chunks_exact(4).map(|c| u32_at(c, 0))
}

struct Sectors {
    file: File,
    len: u64,
    size: usize,
    /// The highest sector id calamine accepts: the file's length in sectors.
    max_id: u64,
}

impl Sectors {
    /// Sector `id`, short when the file ends inside it (as calamine reads it).
    fn get(&mut self, id: u32) -> Result<Vec<u8>, Stream> {
        if u64::from(id) > self.max_id {
            return Err(Stream::Damaged(t!(
                "ole-sector-past-end",
                sector = id.to_string()
            )));
        }
        // Sector 0 follows the header, which is one sector long.
        let start = (u64::from(id) + 1) * self.size as u64;
        if start >= self.len {
            return Err(Stream::Damaged(t!(
                "ole-sector-past-end",
                sector = id.to_string()
            )));
        }
        let mut sector = Vec::with_capacity(self.size);
        self.file
            .seek(SeekFrom::Start(start))
            .and_then(|_| {
                (&mut self.file)
                    .take(self.size as u64)
                    .read_to_end(&mut sector)
            })
            .map_err(|e| {
                Stream::Damaged(t!(
                    "ole-sector-unreadable",
                    sector = id.to_string(),
                    reason = e.to_string()
                ))
            })?;
        Ok(sector)
    }
}

/// Follows the chain from `start` through `fat`, each sector once, keeping
/// at most `want` bytes and failing past `max`.
fn chain(
    start: u32,
    fat: &[u32],
    want: u64,
    max: u64,
    get: &mut dyn FnMut(u32) -> Result<Vec<u8>, Stream>,
) -> Result<Vec<u8>, Stream> {
    let mut out = Vec::new();
    let mut seen = HashSet::new();
    let mut id = start;
    while id != ENDOFCHAIN {
        if !seen.insert(id) {
            return Err(Stream::Damaged(t!(
                "ole-chain-loops",
                sector = id.to_string()
            )));
        }
        let sector = get(id)?;
        let left = usize::try_from(want - out.len() as u64).unwrap_or(usize::MAX);
        out.extend_from_slice(&sector[..sector.len().min(left)]);
        if out.len() as u64 > max {
            return Err(Stream::TooLarge);
        }
        if out.len() as u64 >= want {
            break;
        }
        id = *fat
            .get(id as usize)
            .ok_or_else(|| Stream::Damaged(t!("ole-sector-not-in-fat", sector = id.to_string())))?;
    }
    Ok(out)
}

struct Entry {
    name: String,
    start: u32,
    len: u64,
}

/// The `Workbook` (else `Book`) stream of the compound file at `path`, as
/// calamine will read it, or why it cannot be read within bounds.
pub fn workbook_stream(path: &Path, max_len: u64) -> std::io::Result<Stream> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let mut header = [0u8; 512];
    if len < 512 {
        return Ok(Stream::NotOle);
    }
    file.read_exact(&mut header)?;
    if header[..8] != SIGNATURE {
        return Ok(Stream::NotOle);
    }
    let size: usize = match u16_at(&header, 30) {
        0x09 => 512,
        0x0C => 4096,
        _ => return Ok(Stream::NotOle),
    };
    if u16_at(&header, 32) != 6 || len < size as u64 {
        return Ok(Stream::NotOle);
    }
    let mut sectors = Sectors {
        file,
        len,
        size,
        max_id: len / size as u64,
    };
    Ok(read(&mut sectors, &header, max_len).unwrap_or_else(|stream| stream))
}

fn read(sectors: &mut Sectors, header: &[u8; 512], max_len: u64) -> Result<Stream, Stream> {
    let dir_start = u32_at(header, 48);
    let mini_fat_start = u32_at(header, 60);
    let mini_fat_len = u64::from(u32_at(header, 64));
    let difat_start = u32_at(header, 68);
    // The DIFAT: 109 entries in the header, then a chain of sectors whose
    // last entry points to the next.
    let mut difat: Vec<u32> = u32s(&header[76..512]).collect();
    let mut seen = HashSet::new();
    let mut id = difat_start;
    while id < RESERVED {
        if !seen.insert(id) {
            return Err(Stream::Damaged(t!(
                "ole-difat-loops",
                sector = id.to_string()
            )));
        }
        difat.extend(u32s(&sectors.get(id)?));
        id = difat
            .pop()
            .ok_or_else(|| Stream::Damaged(t!("ole-difat-empty")))?;
    }
    // The FAT: each sector named once.
    let mut fat = Vec::new();
    let mut fat_sectors = HashSet::new();
    for id in difat.into_iter().filter(|id| *id < DIFSECT) {
        if !fat_sectors.insert(id) {
            return Err(Stream::Damaged(t!(
                "ole-fat-twice",
                sector = id.to_string()
            )));
        }
        fat.extend(u32s(&sectors.get(id)?));
    }
    let file_len = sectors.len;
    let sector_size = sectors.size as u64;
    let mut regular = |id: u32| sectors.get(id);
    let dirs = chain(dir_start, &fat, u64::MAX, file_len, &mut regular)?;
    let dirs: Vec<Entry> = dirs
        .chunks_exact(128)
        .map(|d| {
            let units: Vec<u16> = d[..64].chunks_exact(2).map(|c| u16_at(c, 0)).collect();
            let mut name = String::from_utf16_lossy(&units);
            if let Some(nul) = name.find('\0') {
                name.truncate(nul);
            }
            // As calamine reads it: 32 bits with 512-byte sectors, else 64.
            let len = if sector_size == 512 {
                u64::from(u32_at(d, 120))
            } else {
                u64::from(u32_at(d, 120)) | (u64::from(u32_at(d, 124)) << 32)
            };
            Entry {
                name,
                start: u32_at(d, 116),
                len,
            }
        })
        .collect();
    let Some(root) = dirs.first() else {
        return Err(Stream::Damaged(t!("ole-no-root")));
    };
    let named = |name: &str| dirs.iter().find(|d| d.name.eq_ignore_ascii_case(name));
    let Some(entry) = named("Workbook").or_else(|| named("Book")) else {
        return Ok(Stream::Missing);
    };
    if entry.len >= MINI_CUTOFF {
        let stream = chain(entry.start, &fat, entry.len, max_len, &mut regular)?;
        return Ok(Stream::Found(stream));
    }
    if mini_fat_len == 0 {
        return Err(Stream::Damaged(t!("ole-no-mini-stream")));
    }
    let mini = chain(root.start, &fat, root.len, file_len, &mut regular)?;
    let mini_fat = chain(
        mini_fat_start,
        &fat,
        mini_fat_len.saturating_mul(sector_size),
        file_len,
        &mut regular,
    )?;
    let mini_fat: Vec<u32> = u32s(&mini_fat).collect();
    let mut in_mini = |id: u32| {
        let start = id as usize * MINI_SECTOR;
        mini.get(start..start + MINI_SECTOR)
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Stream::Damaged(t!("ole-mini-sector-past-end", sector = id.to_string())))
    };
    let stream = chain(entry.start, &mini_fat, entry.len, max_len, &mut in_mini)?;
    Ok(Stream::Found(stream))
}
