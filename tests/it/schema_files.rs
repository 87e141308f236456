//! The schema's sources: `sql/schema/NN_<feature>.sql` (run in name order)
//! and `sql/clean.sql`. `sql/MASTER-DATABASE.sql` and `sql/MASTER-CLEAN.sql`
//! are generated from them by `scripts/generate-sql`; these tests fail when
//! a master is stale, and when a feature's table is set up (RLS, grants)
//! outside its own file.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn generate_sql(dir: &Path, args: &[&str]) -> Output {
    Command::new(dir.join("scripts/generate-sql"))
        .args(args)
        .output()
        .expect("running scripts/generate-sql")
}

/// The feature files, in the order the schema runs them.
fn feature_files() -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("sql/schema"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "sql"))
        .collect();
    files.sort();
    files
}

#[test]
fn the_masters_are_what_scripts_generate_sql_makes_of_the_sources() {
    let out = generate_sql(root(), &["--check"]);
    assert!(
        out.status.success(),
        "{}\nRun scripts/generate-sql and commit the masters with their sources.",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The check itself: in a copy of `sql/` and the script, a changed feature
/// file or clean source makes its master stale; generating mends it.
#[test]
fn a_changed_source_makes_its_master_stale_until_generated_again() {
    let copy = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(copy.path().join("scripts")).unwrap();
    std::fs::copy(
        root().join("scripts/generate-sql"),
        copy.path().join("scripts/generate-sql"),
    )
    .unwrap();
    let cp = Command::new("cp")
        .arg("-R")
        .arg(root().join("sql"))
        .arg(copy.path())
        .status()
        .unwrap();
    assert!(cp.success());
    assert!(generate_sql(copy.path(), &["--check"]).status.success());

    for (source, master) in [
        ("sql/schema/06_templates.sql", "sql/MASTER-DATABASE.sql"),
        ("sql/clean.sql", "sql/MASTER-CLEAN.sql"),
    ] {
        let path = copy.path().join(source);
        let mut text = std::fs::read_to_string(&path).unwrap();
        text.push_str("\n-- a change\n");
        std::fs::write(&path, text).unwrap();
        let stale = generate_sql(copy.path(), &["--check"]);
        assert_eq!(stale.status.code(), Some(1));
        let said = String::from_utf8_lossy(&stale.stderr);
        assert!(said.contains(&format!("{master} is stale")), "{said}");
        assert!(generate_sql(copy.path(), &[]).status.success());
        assert!(generate_sql(copy.path(), &["--check"]).status.success());
        let generated = std::fs::read_to_string(copy.path().join(master)).unwrap();
        assert!(generated.contains("-- a change"), "{master}");
    }
}

/// The generated master is the feature files, in name order, nothing lost.
#[test]
fn the_master_holds_every_feature_file_in_order() {
    let master = std::fs::read_to_string(root().join("sql/MASTER-DATABASE.sql")).unwrap();
    let mut at = 0;
    for file in feature_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        let found = master[at..].find(&text).unwrap_or_else(|| {
            panic!(
                "{} is not in the master after the previous file",
                file.display()
            )
        });
        at += found + text.len();
    }
    let files = feature_files();
    assert!(files.len() >= 10, "{files:?}");
    assert!(files[0].ends_with("00_ownership.sql"));
}

/// A table's Row Level Security, policies and grants live in the file that
/// creates it, and each table is created in one file only.
#[test]
fn each_table_is_set_up_in_the_file_that_creates_it() {
    let mut seen = std::collections::BTreeMap::new();
    for file in feature_files() {
        let text = std::fs::read_to_string(&file).unwrap();
        for (at, _) in text.match_indices("create table if not exists public.") {
            let name: String = text[at + "create table if not exists public.".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if let Some(other) = seen.insert(name.clone(), file.clone()) {
                panic!(
                    "{name} is created in {} and {}",
                    other.display(),
                    file.display()
                );
            }
            for needed in [
                format!("alter table public.{name} enable row level security"),
                format!("create policy {name}_select_own on public.{name}"),
            ] {
                assert!(
                    text.contains(&needed),
                    "{}: creates {name} but lacks `{needed}`",
                    file.display()
                );
            }
            let revoked = text.split(';').any(|statement| {
                let statement = statement.trim_start();
                statement.starts_with("revoke all on table")
                    && statement
                        .split(|c: char| c == ',' || c.is_whitespace())
                        .any(|word| word == format!("public.{name}"))
            });
            assert!(
                revoked,
                "{}: creates {name} but does not set its privileges",
                file.display()
            );
        }
    }
    assert!(seen.len() >= 10, "{seen:?}");
}
