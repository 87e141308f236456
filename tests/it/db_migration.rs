//! `mailsync db migration`: the file it writes, applied with psql (as the
//! Supabase CLI applies a migration) to an empty scratch database that has
//! the Supabase roles and `auth` schema, then `mailsync db verify`; no
//! overwrite; nothing new while the schema is the same; a new file when the
//! latest mailsync migration holds another schema.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{json_of, mailsync, stderr, stdout, ScratchDb};

fn migrations(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    files
}

fn psql_apply(url: &str, file: &Path) {
    let o = Command::new("psql")
        .args([
            "-X",
            "-q",
            "-v",
            "ON_ERROR_STOP=1",
            "--single-transaction",
            "-f",
        ])
        .arg(file)
        .arg(url)
        .output()
        .expect("running psql");
    assert!(
        o.status.success(),
        "psql -f {}: {}",
        file.display(),
        String::from_utf8_lossy(&o.stderr)
    );
}

#[tokio::test]
async fn the_migration_provisions_an_empty_project_that_db_verify_accepts() {
    let stack = common::stack();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("supabase/migrations");
    let folder_arg = folder.to_str().unwrap();

    let o = mailsync(
        &stack,
        &["--json", "db", "migration", "--dir", folder_arg],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let written = json_of(&o);
    assert_eq!(written["written"], true);
    let files = migrations(&folder);
    assert_eq!(files.len(), 1);
    let name = files[0].file_name().unwrap().to_str().unwrap().to_string();
    // <YYYYMMDDHHMMSS>_mailsync_<version>.sql, as the Supabase CLI wants.
    let (stamp, rest) = name.split_once('_').unwrap();
    assert_eq!(stamp.len(), 14, "{name}");
    assert!(stamp.bytes().all(|b| b.is_ascii_digit()), "{name}");
    assert_eq!(rest, format!("mailsync_{}.sql", env!("CARGO_PKG_VERSION")));
    let text = std::fs::read_to_string(&files[0]).unwrap();
    assert!(
        text.ends_with(include_str!("../../sql/MASTER-DATABASE.sql")),
        "the schema, as it is"
    );

    // Applied twice (it is idempotent) to an empty project, then verified.
    let db = ScratchDb::create(&stack).await;
    psql_apply(&db.url, &files[0]);
    psql_apply(&db.url, &files[0]);
    let verify = mailsync(&stack, &["db", "verify"], &[("SUPABASE_DB_URL", &db.url)]);
    assert!(
        verify.status.success(),
        "db verify after the migration: {}{}",
        stdout(&verify),
        stderr(&verify)
    );
    db.drop(&stack).await;

    // The same schema again: nothing new.
    let o = mailsync(
        &stack,
        &["--json", "db", "migration", "--dir", folder_arg],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["written"], false);
    assert_eq!(json_of(&o)["file"], files[0].to_str().unwrap());
    assert_eq!(migrations(&folder).len(), 1);
}

#[tokio::test]
async fn a_changed_schema_is_a_new_migration_and_nothing_is_overwritten() {
    let stack = common::stack();
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("migrations");
    std::fs::create_dir_all(&folder).unwrap();
    // An earlier mailsync's migration (another schema), and someone else's.
    let earlier = folder.join("20240101000000_mailsync_0.0.9.sql");
    std::fs::write(
        &earlier,
        "-- mailsync 0.0.9\n-- mailsync-schema-sha256: 0000\n\ncreate table x ();\n",
    )
    .unwrap();
    std::fs::write(
        folder.join("20991231000000_add_invoices.sql"),
        "select 1;\n",
    )
    .unwrap();

    let o = mailsync(
        &stack,
        &[
            "--json",
            "db",
            "migration",
            "--dir",
            folder.to_str().unwrap(),
        ],
        &[],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["written"], true);
    assert_eq!(migrations(&folder).len(), 3, "a new file beside the others");
    assert_eq!(
        std::fs::read_to_string(&earlier).unwrap(),
        "-- mailsync 0.0.9\n-- mailsync-schema-sha256: 0000\n\ncreate table x ();\n",
        "the earlier migration is untouched"
    );

    // Where the file to write exists already (same second), it is refused.
    let other = tempfile::tempdir().unwrap();
    let mut taken = Vec::new();
    for s in 0..5 {
        let p = other.path().join(format!(
            "{}_mailsync_{}.sql",
            utc_stamp_in(s),
            env!("CARGO_PKG_VERSION")
        ));
        std::fs::write(&p, "-- mailsync-schema-sha256: 1111\nkept\n").unwrap();
        taken.push(p);
    }
    let o = mailsync(
        &stack,
        &["db", "migration", "--dir", other.path().to_str().unwrap()],
        &[],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("never overwrites"), "{}", stderr(&o));
    for p in taken {
        assert_eq!(
            std::fs::read_to_string(p).unwrap(),
            "-- mailsync-schema-sha256: 1111\nkept\n"
        );
    }
}

/// UTC `seconds` from now as YYYYMMDDHHMMSS, the migration timestamp.
fn utc_stamp_in(seconds: i64) -> String {
    (chrono::Utc::now() + chrono::Duration::seconds(seconds))
        .format("%Y%m%d%H%M%S")
        .to_string()
}
