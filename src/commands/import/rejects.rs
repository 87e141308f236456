//! The rejected rows of an import, in bounded memory: the first ones are
//! kept for the summary and `--json` (at most [`KEPT`] rows and
//! [`KEPT_BYTES`] of text), every one is counted, and with `--rejects PATH`
//! every one is streamed to a CSV file as the first pass finds it.
//!
//! The file is written next to PATH under a temporary name and renamed into
//! place once the first pass has read the whole sheet, so an import stopped
//! by a read error or a crash never leaves half a rejects file; one stopped
//! by a check on the rows (nearly all rejected, `--strict`) still writes it,
//! since the file is how a user sees what went wrong.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::validate::Reject;
use crate::error::{Error, Result};
use crate::spreadsheet::neutralize;

/// Rejects kept in memory for the summary and `--json`.
pub const KEPT: usize = 1000;
/// Text of the rejects kept in memory: a cell may hold 32 767 characters,
/// so the count alone would not bound it.
pub const KEPT_BYTES: usize = 8 << 20;

/// The rejects of one import: the first ones, the count of all of them, and
/// the file they all go to.
#[derive(Debug, Default)]
pub struct Rejects {
    kept: Vec<Reject>,
    kept_bytes: usize,
    /// Set at the first reject not kept: the kept ones stay the first ones.
    full: bool,
    total: u64,
    file: Option<RejectsFile>,
}

impl Rejects {
    /// Rejects kept in memory only.
    pub fn new() -> Self {
        Self::default()
    }

    /// Rejects streamed to `path` (a temporary file until [`Self::persist`]).
    pub fn to_file(path: &Path) -> Result<Self> {
        Ok(Self {
            file: Some(RejectsFile::create(path)?),
            ..Self::default()
        })
    }

    pub fn push(&mut self, reject: Reject) -> Result<()> {
        self.total += 1;
        if let Some(file) = &mut self.file {
            file.write(&reject)?;
        }
        let size = reject.organization.len() + reject.email.len() + reject.reason.len();
        self.full = self.full || self.kept.len() >= KEPT || self.kept_bytes + size > KEPT_BYTES;
        if !self.full {
            self.kept_bytes += size;
            self.kept.push(reject);
        }
        Ok(())
    }

    /// Every reject, kept or not.
    pub fn total(&self) -> u64 {
        self.total
    }

    pub fn is_empty(&self) -> bool {
        self.total == 0
    }

    /// The first rejects, in row order.
    pub fn kept(&self) -> &[Reject] {
        &self.kept
    }

    /// Puts the rejects file in place (nothing without `--rejects`).
    pub fn persist(&mut self) -> Result<()> {
        match self.file.take() {
            Some(file) => file.persist(),
            None => Ok(()),
        }
    }
}

/// The CSV (row, organization, email, reason) being written, under a
/// temporary name in the destination's directory.
struct RejectsFile {
    path: PathBuf,
    writer: csv::Writer<BufWriter<tempfile::NamedTempFile>>,
}

impl std::fmt::Debug for RejectsFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RejectsFile")
            .field("path", &self.path)
            .finish()
    }
}

fn cannot_write(path: &Path, e: &dyn std::fmt::Display) -> Error {
    Error::failure(crate::t!(
        "import-error-rejects-write",
        file = path.display().to_string(),
        reason = e.to_string()
    ))
}

impl RejectsFile {
    fn create(path: &Path) -> Result<Self> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let tmp = tempfile::NamedTempFile::new_in(dir).map_err(|e| cannot_write(path, &e))?;
        let mut writer = csv::Writer::from_writer(BufWriter::new(tmp));
        writer
            .write_record(["row", "organization", "email", "reason"])
            .map_err(|e| cannot_write(path, &e))?;
        Ok(Self {
            path: path.to_path_buf(),
            writer,
        })
    }

    fn write(&mut self, r: &Reject) -> Result<()> {
        self.writer
            .write_record(
                [
                    neutralize(&r.row.to_string()),
                    neutralize(&r.organization),
                    neutralize(&r.email),
                    neutralize(&r.reason),
                ]
                .iter()
                .map(|cell| cell.as_bytes()),
            )
            .map_err(|e| cannot_write(&self.path, &e))
    }

    fn persist(self) -> Result<()> {
        let path = self.path;
        let buffered = self
            .writer
            .into_inner()
            .map_err(|e| cannot_write(&path, &e.error()))?;
        let mut tmp = buffered
            .into_inner()
            .map_err(|e| cannot_write(&path, &e.error()))?;
        tmp.as_file_mut()
            .flush()
            .map_err(|e| cannot_write(&path, &e))?;
        tmp.persist(&path)
            .map_err(|e| cannot_write(&path, &e.error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reject(row: u32, email: &str) -> Reject {
        Reject {
            row,
            organization: "=Acme".into(),
            email: email.into(),
            reason: "missing email".into(),
        }
    }

    #[test]
    fn memory_keeps_the_first_and_the_file_gets_every_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rejects.csv");
        let mut rejects = Rejects::to_file(&path).unwrap();
        for row in 0..(KEPT as u32 + 500) {
            rejects.push(reject(row, "x")).unwrap();
        }
        assert_eq!(rejects.total(), KEPT as u64 + 500);
        assert_eq!(rejects.kept().len(), KEPT);
        assert_eq!(rejects.kept()[KEPT - 1].row, KEPT as u32 - 1);
        assert!(!path.exists(), "the file appears only once complete");
        rejects.persist().unwrap();
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 1 + KEPT + 500);
        assert_eq!(lines[0], "row,organization,email,reason");
        assert_eq!(lines[1], "0,'=Acme,x,missing email");
        assert!(lines[KEPT + 500].starts_with(&format!("{},", KEPT + 499)));
        // Only the rejects file is left in the directory.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn long_cells_bound_the_memory_by_size_too() {
        let mut rejects = Rejects::new();
        let long = "x".repeat(32_767 * 4);
        for row in 0..200 {
            rejects.push(reject(row, &long)).unwrap();
        }
        assert_eq!(rejects.total(), 200);
        let kept: usize = rejects.kept().iter().map(|r| r.email.len()).sum();
        assert!(kept <= KEPT_BYTES, "{kept} bytes kept");
        assert!(rejects.kept().len() < 200);
    }
}
