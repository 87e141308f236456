//! `mailsync db migration [--dir supabase/migrations]`: the schema as a
//! Supabase CLI migration, `<YYYYMMDDHHMMSS>_mailsync_<version>.sql`, for
//! teams whose schema lives in `supabase/migrations` (`supabase db push`,
//! `supabase db reset`, branching).
//!
//! The file is `sql/MASTER-DATABASE.sql` as it is (embedded at build time,
//! idempotent: `create ... if not exists`, `create or replace`, `drop ...
//! if exists`), under a header naming the mailsync version and the SHA-256 of
//! that schema. Because the schema is idempotent, the full file *is* the
//! upgrade from any earlier mailsync schema: a later mailsync version writes
//! it again as a new, later migration. When the latest mailsync migration in
//! the folder already carries this schema's hash, nothing is written. An
//! existing file is never overwritten.
//! Server side: `sql/MASTER-DATABASE.sql`. Tests: `tests/it/db_migration.rs`.

use std::io::Write;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

use super::MASTER_DATABASE;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::t;

/// The folder the Supabase CLI reads migrations from.
pub const DEFAULT_DIR: &str = "supabase/migrations";
/// The header line that carries the schema's hash.
const HASH_LINE: &str = "-- mailsync-schema-sha256: ";

#[derive(Debug, Clone)]
pub struct Options {
    pub dir: PathBuf,
}

#[derive(Debug, Serialize)]
struct Written {
    /// The migration file: written now, or the existing one that already
    /// holds this schema.
    file: String,
    written: bool,
    version: &'static str,
    schema_sha256: String,
}

/// The SHA-256 of the embedded schema, in hex.
pub fn schema_hash() -> String {
    Sha256::digest(MASTER_DATABASE.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The migration's text: a header, then the schema as it is.
pub fn migration_text(hash: &str) -> String {
    format!(
        "-- mailsync {version}: the mailsync schema (sql/MASTER-DATABASE.sql), written by
-- `mailsync db migration`. Idempotent: it creates what is missing, replaces
-- functions, views and policies, and keeps every row, so it also upgrades a
-- project that has an earlier mailsync schema. Do not edit: a later mailsync
-- writes its schema as a new migration.
{HASH_LINE}{hash}

{MASTER_DATABASE}",
        version = env!("CARGO_PKG_VERSION"),
    )
}

pub async fn run(options: &Options, out: &Output) -> Result<()> {
    let dir = &options.dir;
    let hash = schema_hash();
    let version = env!("CARGO_PKG_VERSION");
    std::fs::create_dir_all(dir).map_err(|e| {
        Error::failure(t!(
            "file-error-create-folder",
            file = dir.display().to_string(),
            reason = e.to_string()
        ))
    })?;
    if let Some(latest) = latest_mailsync_migration(dir)? {
        if recorded_hash(&latest)?.as_deref() == Some(hash.as_str()) {
            let report = Written {
                file: latest.display().to_string(),
                written: false,
                version,
                schema_sha256: hash,
            };
            if out.json {
                return out.json(&report);
            }
            out.print(t!(
                "migration-up-to-date",
                file = report.file.as_str(),
                version = version
            ));
            return Ok(());
        }
    }
    let stamp = chrono::Utc::now().format("%Y%m%d%H%M%S");
    let path = dir.join(format!("{stamp}_mailsync_{version}.sql"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| {
            if e.kind() == std::io::ErrorKind::AlreadyExists {
                Error::refused(t!(
                    "migration-error-exists",
                    file = path.display().to_string()
                ))
                .with_hint(t!("migration-hint-exists"))
            } else {
                Error::failure(t!(
                    "file-error-write",
                    file = path.display().to_string(),
                    reason = e.to_string()
                ))
            }
        })?;
    let written = file
        .write_all(migration_text(&hash).as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        let _ = std::fs::remove_file(&path);
        return Err(Error::failure(t!(
            "file-error-write",
            file = path.display().to_string(),
            reason = e.to_string()
        )));
    }
    let report = Written {
        file: path.display().to_string(),
        written: true,
        version,
        schema_sha256: hash,
    };
    if out.json {
        return out.json(&report);
    }
    out.print(t!("migration-written", file = report.file.as_str()));
    out.note(t!("migration-next"));
    Ok(())
}

fn cannot_read(path: &Path, e: &std::io::Error) -> Error {
    Error::failure(t!(
        "file-error-read",
        file = path.display().to_string(),
        reason = e.to_string()
    ))
}

/// The mailsync migration of `dir` with the latest timestamp, if any.
fn latest_mailsync_migration(dir: &Path) -> Result<Option<PathBuf>> {
    let entries = std::fs::read_dir(dir).map_err(|e| cannot_read(dir, &e))?;
    let mut latest: Option<(String, PathBuf)> = None;
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some((stamp, rest)) = name.split_once('_') else {
            continue;
        };
        if !stamp.bytes().all(|b| b.is_ascii_digit())
            || !rest.starts_with("mailsync_")
            || !rest.ends_with(".sql")
        {
            continue;
        }
        // Timestamps compare as numbers: a longer one is later.
        let later = |(s, _): &(String, PathBuf)| (stamp.len(), stamp) > (s.len(), s.as_str());
        if latest.as_ref().is_none_or(later) {
            latest = Some((stamp.to_string(), entry.path()));
        }
    }
    Ok(latest.map(|(_, p)| p))
}

/// The schema hash a migration's header records.
fn recorded_hash(path: &Path) -> Result<Option<String>> {
    let text = std::fs::read_to_string(path).map_err(|e| cannot_read(path, &e))?;
    Ok(text
        .lines()
        .take(20)
        .find_map(|l| l.strip_prefix(HASH_LINE))
        .map(|h| h.trim().to_string()))
}
