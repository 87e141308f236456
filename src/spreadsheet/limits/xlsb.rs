//! `.xlsb` limits: the shared strings a workbook declares.

use std::io::Read;
use std::path::Path;

use super::{too_many_strings, unreadable, Limits};
use crate::error::Result;
use crate::spreadsheet::xlsb::record_header;

/// `.xlsb` shared strings: the counts of the `BrtBeginSst` record.
pub(super) fn check_xlsb_shared_strings<R: Read>(
    path: &Path,
    mut entry: R,
    limits: &Limits,
) -> Result<()> {
    let Ok(Some((typ, len))) = record_header(&mut entry) else {
        return Err(unreadable());
    };
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
