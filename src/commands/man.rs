//! `mailsync man [--dir DIR]`: one manual page per command (`mailsync.1`,
//! `mailsync-db-reset.1`, ...), generated from the same clap definitions as
//! `--help`. `cli.rs` renders the pages (only it knows the command line);
//! this writes them, each through a temporary file renamed into place.
//! Server side: none. Tests: `tests/it/help.rs`.

use std::io::Write;
use std::path::PathBuf;

use serde::Serialize;

use crate::error::{Error, Result};
use crate::output::Output;

/// Where the pages go by default.
pub const DEFAULT_DIR: &str = "man";

#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
    /// (file name, roff text) of each page.
    pub pages: Vec<(String, Vec<u8>)>,
}

#[derive(Serialize)]
struct Written {
    dir: String,
    pages: Vec<String>,
}

pub fn run(options: &Options, out: &Output) -> Result<()> {
    let dir = &options.dir;
    let fail = |e: &dyn std::fmt::Display| {
        Error::failure(crate::t!(
            "man-error-write",
            dir = dir.display().to_string(),
            reason = e.to_string()
        ))
    };
    std::fs::create_dir_all(dir).map_err(|e| fail(&e))?;
    for (name, text) in &options.pages {
        let mut tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
        tmp.write_all(text).map_err(|e| fail(&e))?;
        tmp.persist(dir.join(name)).map_err(|e| fail(&e.error))?;
    }
    let written = Written {
        dir: dir.display().to_string(),
        pages: options.pages.iter().map(|(n, _)| n.clone()).collect(),
    };
    if out.json {
        return out.json(&written);
    }
    out.print(crate::t!(
        "man-done",
        count = written.pages.len(),
        dir = written.dir.as_str()
    ));
    Ok(())
}
