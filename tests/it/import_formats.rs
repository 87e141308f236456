//! `mailsync import` of real files in every format it reads: the fixtures in
//! tests/fixtures/import/, one contact list saved by LibreOffice (.xls,
//! .xlsx, .xlsm, .ods, .tsv) and by SheetJS (.xlsb), imported through the
//! binary against the local stack and read back from the database.
//! tests/fixtures/import/README.md says how each file was made.

use crate::common;

use std::path::PathBuf;

use common::{
    contacts_of, import_counts, json_of, mailsync, new_user, organizations_of, stderr, Stack, User,
};
use serde_json::Value;

fn fixture(ext: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(format!("tests/fixtures/import/contacts.{ext}"))
}

fn import_as(stack: &Stack, user: &User, ext: &str, extra: &[&str]) -> Value {
    let path = fixture(ext);
    let mut args = vec!["--json", "import", path.to_str().unwrap()];
    args.extend(extra);
    let out = mailsync(stack, &args, &[("MAILSYNC_ACCESS_TOKEN", &user.token)]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "import of contacts.{ext} {extra:?}: {}",
        stderr(&out)
    );
    json_of(&out)
}

/// The contacts in email order, with `organisation` as each one's row gives
/// it in the column read (the winning row for the duplicated email).
fn expected(organisation: [Option<&str>; 9]) -> Vec<(String, Option<String>)> {
    let emails = [
        "ana.garcia@example.es",
        "claire.petit@example.fr",
        "compta@1234.example.com",
        "hans.mueller@example.de",
        "jean.dupont@example.fr",
        "lars.nielsen@example.dk",
        "marie.lefevre@example.fr",
        "paul.martin@example.com",
        "zoe@baeckerei.example.de",
    ];
    emails
        .iter()
        .zip(organisation)
        .map(|(e, o)| (e.to_string(), o.map(str::to_string)))
        .collect()
}

/// Imports the fixture of format `ext` three ways (columns A and B, twice;
/// the date column C and the number column D as organisations) and checks
/// the report and the database after each.
async fn imports_as_the_sheet_says(ext: &str) {
    let stack = common::ready().await;
    let user = new_user(&stack).await;

    let report = import_as(&stack, &user, ext, &[]);
    let sheet = if ext == "tsv" { "contacts" } else { "Contacts" };
    assert_eq!(report["sheet"], sheet, "{report}");
    // 12 data rows: one blank, one invalid email, one email twice.
    assert_eq!(
        import_counts(&report),
        [12, 1, 1, 1, 9, 0, 0, 7],
        "{ext}: {report}"
    );
    let rejects = report["rejects"].as_array().unwrap();
    assert_eq!(rejects.len(), 1, "{report}");
    assert_eq!(rejects[0]["row"], 9);
    assert_eq!(rejects[0]["organization"], "Café de la Gare");
    assert_eq!(rejects[0]["email"], "contact.cafe-de-la-gare.fr");

    assert_eq!(
        contacts_of(&user).await,
        expected([
            Some("Ñandú Ediciones"),
            // "société générale": the organisation of row 2, matched
            // whatever the letter case.
            Some("Société Générale"),
            // A number cell, as a person sees it.
            Some("1234"),
            // Trimmed, inner white space collapsed.
            Some("Müller & Söhne GmbH"),
            Some("Société Générale"),
            Some("Ørsted A/S"),
            // Row 8 wins over row 3 ("Crédit Agricole").
            Some("Crédit Agricole Île-de-France"),
            None,
            Some("Zoë's Bäckerei"),
        ]),
        "{ext}"
    );
    assert_eq!(
        organizations_of(&user).await,
        [
            "1234",
            "Crédit Agricole Île-de-France",
            "Müller & Söhne GmbH",
            "Société Générale",
            "Zoë's Bäckerei",
            "Ñandú Ediciones",
            "Ørsted A/S",
        ],
        "{ext}"
    );

    // The same file again changes nothing.
    let again = import_as(&stack, &user, ext, &[]);
    assert_eq!(
        import_counts(&again),
        [12, 1, 1, 1, 0, 0, 9, 0],
        "{ext}: {again}"
    );

    // Dates and numbers read as the sheet shows them: column C (dates) and
    // column D (numbers with decimals) taken as the organisation.
    let dates = new_user(&stack).await;
    let report = import_as(&stack, &dates, ext, &["--org-column", "C"]);
    assert_eq!(report["contacts_created"], 9, "{ext}: {report}");
    assert_eq!(
        contacts_of(&dates).await,
        expected([
            Some("2025-01-06"),
            Some("2024-02-29"),
            Some("2018-10-10"),
            Some("2022-01-15"),
            Some("2024-03-31"),
            Some("2020-11-30"),
            Some("2024-04-02"),
            Some("2021-07-14"),
            Some("2024-12-24"),
        ]),
        "{ext}: dates"
    );
    let numbers = new_user(&stack).await;
    let report = import_as(&stack, &numbers, ext, &["--org-column", "D"]);
    assert_eq!(report["contacts_created"], 9, "{ext}: {report}");
    assert_eq!(
        contacts_of(&numbers).await,
        expected([
            Some("20"),
            Some("7.25"),
            Some("2.5"),
            Some("0"),
            Some("12.5"),
            Some("15"),
            Some("10"),
            None,
            Some("0.5"),
        ]),
        "{ext}: numbers"
    );
}

#[tokio::test]
async fn xls_written_by_libreoffice_imports_as_the_sheet_says() {
    imports_as_the_sheet_says("xls").await;
}

#[tokio::test]
async fn xlsx_written_by_libreoffice_imports_as_the_sheet_says() {
    imports_as_the_sheet_says("xlsx").await;
}

#[tokio::test]
async fn xlsm_written_by_libreoffice_imports_as_the_sheet_says() {
    imports_as_the_sheet_says("xlsm").await;
}

#[tokio::test]
async fn ods_written_by_libreoffice_imports_as_the_sheet_says() {
    imports_as_the_sheet_says("ods").await;
}

#[tokio::test]
async fn tsv_written_by_libreoffice_imports_as_the_sheet_says() {
    imports_as_the_sheet_says("tsv").await;
}

#[tokio::test]
async fn xlsb_written_by_sheetjs_imports_as_the_sheet_says() {
    // SheetJS writes every cell after the first of a row in the short
    // form, which calamine skips: without the full-form copy, each row had
    // only its organisation and every email was missing.
    imports_as_the_sheet_says("xlsb").await;
}

/// The fixtures are the files the README describes: each opens as its
/// format (a renamed file would pass the import tests above too).
#[test]
fn fixtures_are_the_formats_their_names_say() {
    let starts = |ext: &str, magic: &[u8]| {
        let bytes = std::fs::read(fixture(ext)).unwrap();
        assert!(bytes.starts_with(magic), "contacts.{ext}");
        bytes
    };
    starts("xls", &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1]);
    let entries = |ext: &str| {
        let bytes = starts(ext, b"PK\x03\x04");
        let zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
        zip.file_names()
            .map(|name| name.unwrap().into_owned())
            .collect::<Vec<_>>()
    };
    assert!(entries("xlsb").contains(&"xl/worksheets/sheet1.bin".to_string()));
    assert!(entries("xlsx").contains(&"xl/worksheets/sheet1.xml".to_string()));
    assert!(entries("ods").contains(&"content.xml".to_string()));
    let mut xlsm = zip::ZipArchive::new(std::fs::File::open(fixture("xlsm")).unwrap()).unwrap();
    let mut types = String::new();
    std::io::Read::read_to_string(
        &mut xlsm.by_name("[Content_Types].xml").unwrap(),
        &mut types,
    )
    .unwrap();
    assert!(types.contains("application/vnd.ms-excel.sheet.macroEnabled.main+xml"));
    let tsv = std::fs::read_to_string(fixture("tsv")).unwrap();
    assert!(tsv.starts_with("Organisation\tAdresse e-mail\t"), "{tsv}");
}
