//! `.xlsx` limits: the shared strings a workbook declares and holds.

use std::io::Read;
use std::path::Path;

use quick_xml::events::Event;

use super::{number_attr, too_many_strings, unreadable, xml_reader, Limits};
use crate::error::Result;

/// The `count`/`uniqueCount` an `<sst>` declares and the `<si>` entries it
/// holds, each within the limit.
pub(super) fn count_shared_strings<R: Read>(path: &Path, entry: R, limits: &Limits) -> Result<()> {
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
