//! `scripts/ci-recipe.sh`, the steps of docs/ci.md, run against the local
//! stack so the recipe cannot rot: a clean sheet provisions, verifies and
//! imports (exit 0, every step's JSON kept); a sheet with a bad row stops at
//! the import with exit 4, its rejects kept and nothing written.
//!
//! The `db` steps run on a scratch database (they apply DDL, which would make
//! the shared REST server reload its schema under the other tests); the
//! import goes through the stack's REST API as a fresh user, as in CI.

use crate::common;

use std::path::Path;
use std::process::Command;

use common::{new_user, ScratchDb, Stack, User};
use serde_json::Value;

fn recipe(stack: &Stack, db: &ScratchDb, user: &User, sheet: &Path, artifacts: &Path) -> i32 {
    let o = Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/ci-recipe.sh"))
        .arg(sheet)
        .arg(artifacts)
        .current_dir(artifacts.parent().unwrap())
        .env("MAILSYNC", env!("CARGO_BIN_EXE_mailsync"))
        .env("SUPABASE_URL", &stack.url)
        .env("SUPABASE_ANON_KEY", &stack.anon_key)
        .env("SUPABASE_DB_URL", &db.url)
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .env(
            "MAILSYNC_CONFIG_DIR",
            artifacts.parent().unwrap().join("config"),
        )
        .env("NO_COLOR", "1")
        .stdin(std::process::Stdio::null())
        .output()
        .expect("running scripts/ci-recipe.sh");
    eprintln!("{}", String::from_utf8_lossy(&o.stderr));
    o.status.code().expect("the recipe exited")
}

fn artifact(dir: &Path, name: &str) -> Value {
    let text =
        std::fs::read_to_string(dir.join(name)).unwrap_or_else(|e| panic!("artifact {name}: {e}"));
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("{name} is not JSON ({e}): {text}"))
}

async fn contacts_of(user: &User) -> i64 {
    common::admin()
        .await
        .query_one(
            "select count(*) from public.contacts where user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn the_recipe_provisions_verifies_imports_and_keeps_its_results() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("contacts.csv");
    std::fs::write(
        &sheet,
        "organisation,email\nAcme SARL,a@acme.fr\nAcme SARL,b@acme.fr\nBeta,c@beta.fr\n",
    )
    .unwrap();
    let artifacts = dir.path().join("artifacts");

    assert_eq!(recipe(&stack, &db, &user, &sheet, &artifacts), 0);
    assert!(
        artifact(&artifacts, "db-apply.json")["tables"]
            .as_i64()
            .unwrap()
            >= 5
    );
    let verify = artifact(&artifacts, "db-verify.json");
    assert!(!verify.to_string().contains("\"ok\":false"), "{verify}");
    let import = artifact(&artifacts, "import.json");
    assert_eq!(import["contacts_created"], 3, "{import}");
    assert_eq!(artifact(&artifacts, "dashboard.json")["total_contacts"], 3);
    assert_eq!(
        std::fs::read_to_string(artifacts.join("exit-codes.txt")).unwrap(),
        "db-apply 0\ndb-verify 0\nimport 0\ndashboard 0\n"
    );
    assert_eq!(contacts_of(&user).await, 3);
    db.drop(&stack).await;
}

#[tokio::test]
async fn a_bad_row_stops_the_recipe_with_exit_4_and_keeps_the_rejects() {
    let stack = common::ready().await;
    let db = ScratchDb::create(&stack).await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let sheet = dir.path().join("contacts.csv");
    std::fs::write(
        &sheet,
        "organisation,email\nAcme SARL,a@acme.fr\n=cmd|' /C calc'!A0,not-an-email\n",
    )
    .unwrap();
    let artifacts = dir.path().join("artifacts");

    assert_eq!(recipe(&stack, &db, &user, &sheet, &artifacts), 4);
    let import = artifact(&artifacts, "import.json");
    assert_eq!(import["invalid"], 1, "{import}");
    assert_eq!(import["contacts_created"], 0);
    let rejects = std::fs::read_to_string(artifacts.join("rejects.csv")).unwrap();
    assert!(rejects.contains("not-an-email"), "{rejects}");
    assert!(rejects.contains("'=cmd"), "neutralised: {rejects}");
    assert!(
        !artifacts.join("dashboard.json").exists(),
        "stopped at the import"
    );
    assert_eq!(
        std::fs::read_to_string(artifacts.join("exit-codes.txt")).unwrap(),
        "db-apply 0\ndb-verify 0\nimport 4\n"
    );
    assert_eq!(contacts_of(&user).await, 0, "--strict wrote nothing");
    db.drop(&stack).await;
}
