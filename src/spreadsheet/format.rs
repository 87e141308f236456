//! What a file's name says it is: the formats read ([`Format`]) and the
//! letters of a sheet's columns.

use std::path::Path;

use crate::error::{Error, Result};
use crate::t;

/// A spreadsheet format that can be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Xlsx,
    Xlsb,
    Xls,
    Ods,
    Csv,
}

impl Format {
    /// The format `path`'s extension names (any letter case).
    pub fn of(path: &Path) -> Result<Self> {
        match extension(path).as_str() {
            "xlsx" | "xlsm" | "xlam" => Ok(Format::Xlsx),
            "xlsb" => Ok(Format::Xlsb),
            "xls" | "xla" => Ok(Format::Xls),
            "ods" => Ok(Format::Ods),
            "csv" | "txt" | "tsv" | "tab" => Ok(Format::Csv),
            _ => Err(Error::usage(t!(
                "import-error-file-type",
                file = path.display().to_string()
            ))),
        }
    }
}

/// `path`'s extension in lower case (empty when it has none).
pub fn extension(path: &Path) -> String {
    path.extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default()
}

/// `0` → `A`, `27` → `AB`.
pub fn column_letter(mut index: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (index % 26) as u8);
        if index < 26 {
            break;
        }
        index = index / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}
