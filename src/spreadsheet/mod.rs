//! Spreadsheets, read and written, knowing nothing of contacts or commands.
//!
//! - [`format`]: which kind of file a name says it is.
//! - [`reader`]: a sheet as a stream of rows of text, each pass on its own
//!   thread; [`encoding`] decodes a CSV file's text; [`xlsb`] rewrites the
//!   `.xlsb` short cell records calamine skips.
//! - [`limits`]: the bounds a file is checked against before a library reads
//!   it, one module a format (`xlsx`, `xlsb`, `ods`, `xls` over [`ole`]);
//!   CSV is bounded as its rows stream.
//! - [`writer`]: `.xlsx`/`.csv` written in constant memory, with formulas
//!   neutralised (and [`restore`]d when such a file is read back).
//!
//! Layers point one way: `reader` → `limits` → `format`, `ole`; nothing here
//! uses `crate::commands`.

pub mod encoding;
pub mod format;
pub mod limits;
mod ole;
pub mod reader;
pub mod writer;
mod xlsb;

pub use writer::{neutralize, restore, Cell, Kind, SheetWriter};
