//! The import report: the contract's JSON object, the summary table, the
//! first rejects, and the rejects CSV.

use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::first_pass::Scan;
use super::validate::Reject;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::spreadsheet::reader::Workbook;
use crate::t;

/// What `rpc/import_contacts` answers for one batch.
#[derive(Debug, Default, Deserialize)]
pub struct BatchCounts {
    pub contacts_created: u64,
    pub contacts_updated: u64,
    pub contacts_unchanged: u64,
    pub organizations_created: u64,
}

/// How many rejects the summary shows on screen.
const SHOWN_REJECTS: usize = 10;

/// `import --json`: exactly the fields of the import contract (docs/import.md).
#[derive(Debug, Serialize)]
pub struct Report {
    pub file: String,
    pub sheet: String,
    pub rows: u64,
    pub blank: u64,
    pub invalid: u64,
    pub duplicates: u64,
    pub contacts_created: u64,
    pub contacts_updated: u64,
    pub contacts_unchanged: u64,
    pub organizations_created: u64,
    /// The first rejects (see [`super::rejects::KEPT`]); `invalid` counts
    /// them all, and `--rejects` writes them all.
    pub rejects: Vec<Reject>,
    /// Ctrl-C (or SIGTERM) stopped the import after the batches in flight.
    pub interrupted: bool,
    #[serde(skip)]
    pub unique: u64,
    #[serde(skip)]
    pub elapsed: Duration,
}

pub enum Outcome {
    Done,
    DryRun,
    StrictRefused,
    Interrupted,
}

impl Report {
    pub fn new(book: &Workbook, scan: &Scan) -> Self {
        Self {
            file: book.path.display().to_string(),
            sheet: book.sheet.clone(),
            rows: scan.rows,
            blank: scan.blank,
            invalid: scan.rejects.total(),
            duplicates: scan.duplicates,
            contacts_created: 0,
            contacts_updated: 0,
            contacts_unchanged: 0,
            organizations_created: 0,
            rejects: scan.rejects.kept().to_vec(),
            interrupted: false,
            unique: scan.unique(),
            elapsed: Duration::ZERO,
        }
    }

    pub fn add(&mut self, batch: &BatchCounts) {
        self.contacts_created += batch.contacts_created;
        self.contacts_updated += batch.contacts_updated;
        self.contacts_unchanged += batch.contacts_unchanged;
        self.organizations_created += batch.organizations_created;
    }

    /// Contacts the server has confirmed so far.
    pub fn written(&self) -> u64 {
        self.contacts_created + self.contacts_updated + self.contacts_unchanged
    }

    pub fn partial_note(&self) -> String {
        t!(
            "import-partial",
            written = self.written(),
            total = self.unique,
            created = self.contacts_created,
            updated = self.contacts_updated,
            unchanged = self.contacts_unchanged
        )
    }

    pub fn print(&self, out: &Output, outcome: Outcome) -> Result<()> {
        if out.json {
            return out.json(self);
        }
        let lang = crate::i18n::current();
        let (file, sheet) = (self.file.as_str(), self.sheet.as_str());
        let headline = match outcome {
            Outcome::Done => t!(
                "import-done",
                file = file,
                sheet = sheet,
                count = self.written(),
                seconds = lang.seconds(self.elapsed.as_secs_f64())
            ),
            Outcome::DryRun => t!(
                "import-dry-run",
                file = file,
                sheet = sheet,
                count = self.unique
            ),
            Outcome::StrictRefused => t!(
                "import-strict-refused",
                file = file,
                sheet = sheet,
                count = self.invalid
            ),
            Outcome::Interrupted => t!(
                "import-interrupted",
                written = self.written(),
                total = self.unique,
                file = file
            ),
        };
        out.print(headline);
        let mut table = out.table([String::new(), t!("import-col-rows")]);
        let mut line = |label: String, n: u64| {
            table.add_row(vec![label, lang.count(n)]);
        };
        line(t!("import-rows-read"), self.rows);
        line(t!("import-blank"), self.blank);
        line(t!("import-rejected"), self.invalid);
        line(t!("import-duplicates"), self.duplicates);
        if matches!(outcome, Outcome::Done | Outcome::Interrupted) {
            line(t!("import-created"), self.contacts_created);
            line(t!("import-updated"), self.contacts_updated);
            line(t!("import-unchanged"), self.contacts_unchanged);
            line(
                t!("import-organisations-created"),
                self.organizations_created,
            );
        } else {
            line(t!("import-to-import"), self.unique);
        }
        out.print(table.to_string());
        if !self.rejects.is_empty() {
            let mut rejects = out.table([
                t!("col-row"),
                t!("col-organisation"),
                t!("col-email"),
                t!("col-reason"),
            ]);
            for r in self.rejects.iter().take(SHOWN_REJECTS) {
                rejects.add_row(vec![
                    r.row.to_string(),
                    crate::output::cell(&r.organization),
                    crate::output::cell(&r.email),
                    crate::output::cell(&r.reason),
                ]);
            }
            out.print(format!("{}\n{rejects}", t!("import-rejected-rows")));
            if self.invalid > SHOWN_REJECTS as u64 {
                out.print(t!(
                    "import-more-rejects",
                    count = self.invalid - SHOWN_REJECTS as u64
                ));
            }
        }
        Ok(())
    }
}

/// Refuses a rejects file that is the input itself: the same path, another
/// spelling of it, a symbolic link to it or a hard link to it. Writing the
/// rejects there would replace the spreadsheet.
pub fn check_rejects_path(input: &Path, rejects: &Path) -> Result<()> {
    use std::os::unix::fs::MetadataExt;
    let same_file =
        |a: &std::fs::Metadata, b: &std::fs::Metadata| a.dev() == b.dev() && a.ino() == b.ino();
    let Ok(input_meta) = std::fs::metadata(input) else {
        // No input: the reader says so.
        return Ok(());
    };
    // An existing path (or a link, followed) that is the input's file.
    let existing = std::fs::metadata(rejects)
        .map(|m| same_file(&m, &input_meta))
        .unwrap_or(false);
    // A path not there yet cannot be the input; one through a symbolic link
    // to a missing file is still compared by where it leads.
    let resolved = match (input.canonicalize(), resolve(rejects)) {
        (Ok(a), Some(b)) => a == b,
        _ => false,
    };
    if existing || resolved {
        return Err(Error::usage(t!(
            "import-error-rejects-is-input",
            rejects = rejects.display().to_string(),
            file = input.display().to_string()
        ))
        .with_hint(t!("import-hint-another-file")));
    }
    Ok(())
}

/// Where `path` leads: its parent directory resolved, its name kept, and a
/// symbolic link at the end followed.
fn resolve(path: &Path) -> Option<std::path::PathBuf> {
    if let Ok(full) = path.canonicalize() {
        return Some(full);
    }
    let name = path.file_name()?;
    let parent = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    Some(parent.canonicalize().ok()?.join(name))
}
