//! `mailsync import` of CSV files in the encodings spreadsheets write, and
//! of sheets whose columns are not where the flags say: the real binary
//! against the local stack, the database checked directly afterwards.

use crate::common;

use std::path::Path;

use common::{new_user, run_as, stderr, User};

const TEXT: &str =
    "Organisation,Email\nSociété Générale,zoë@example.test\nCafé Noël,noel@example.test\n";

async fn organizations_of(user: &User) -> Vec<String> {
    common::admin()
        .await
        .query(
            "select organization_name from public.contacts where user_id = $1 order by email",
            &[&user.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect()
}

fn utf16(text: &str, little: bool) -> Vec<u8> {
    let mut out = if little {
        vec![0xff, 0xfe]
    } else {
        vec![0xfe, 0xff]
    };
    for unit in text.encode_utf16() {
        out.extend(if little {
            unit.to_le_bytes()
        } else {
            unit.to_be_bytes()
        });
    }
    out
}

#[tokio::test]
async fn every_encoding_stores_the_same_text() {
    let stack = common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(TEXT);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("utf8.csv", TEXT.as_bytes().to_vec()),
        (
            "utf8-bom.csv",
            [b"\xef\xbb\xbf".as_slice(), TEXT.as_bytes()].concat(),
        ),
        ("utf16le.csv", utf16(TEXT, true)),
        ("utf16be.csv", utf16(TEXT, false)),
        ("excel-fr.csv", cp1252.into_owned()),
    ];
    for (name, bytes) in files {
        let user = new_user(&stack).await;
        let path = dir.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        let o = run_as(&stack, &user, &["import", path.to_str().unwrap()]);
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        assert_eq!(
            organizations_of(&user).await,
            ["Café Noël", "Société Générale"],
            "{name}"
        );
    }
}

#[tokio::test]
async fn a_wrong_forced_encoding_is_an_error_naming_the_row_and_nothing_is_stored() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("latin.csv");
    let (cp1252, _, _) = encoding_rs::WINDOWS_1252.encode(TEXT);
    std::fs::write(&path, cp1252).unwrap();
    let o = run_as(
        &stack,
        &user,
        &["import", path.to_str().unwrap(), "--encoding", "utf-8"],
    );
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("row 2"), "{err}");
    assert!(err.contains("--encoding"), "{err}");
    assert!(organizations_of(&user).await.is_empty());

    let o = run_as(
        &stack,
        &user,
        &["import", path.to_str().unwrap(), "--encoding", "latin-1"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(organizations_of(&user).await.len(), 2);
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let path = dir.join(name);
    std::fs::write(&path, text).unwrap();
    path.to_str().unwrap().to_string()
}

#[tokio::test]
async fn swapped_columns_fail_and_name_the_flag_that_fixes_them() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let mut text = String::from("Email,Company\n");
    for i in 0..20 {
        text.push_str(&format!("person{i}@example.test,Acme {i}\n"));
    }
    let file = write(dir.path(), "swapped.csv", &text);
    let o = run_as(&stack, &user, &["import", &file]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(4), "{err}");
    assert!(err.contains("20 of 20 rows rejected"), "{err}");
    assert!(err.contains("A \"Email\", B \"Company\""), "{err}");
    assert!(
        err.contains("emails read from column B (\"Company\")"),
        "{err}"
    );
    assert!(err.contains("try --email-column A"), "{err}");
    assert!(organizations_of(&user).await.is_empty());

    // The suggested flags work.
    let o = run_as(
        &stack,
        &user,
        &["import", &file, "--email-column", "A", "--org-column", "B"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(organizations_of(&user).await.len(), 20);

    // A column beyond the sheet is named as such.
    let o = run_as(&stack, &user, &["import", &file, "--email-column", "Z"]);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(1), "{err}");
    assert!(err.contains("no column Z"), "{err}");
    assert!(err.contains("2 columns (A to B)"), "{err}");
    assert!(err.contains("try --email-column A"), "{err}");
}
