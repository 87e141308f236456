//! The sheet reader never panics, whatever the bytes: random files under
//! every supported extension, and valid workbooks with bytes flipped or cut.
//! Inputs that once crashed a reader are kept below as regression cases.

use std::path::Path;

use indicatif::ProgressBar;
use mailsync::commands::import::reader::Workbook;
use mailsync::commands::import::scan;
use mailsync::commands::import::validate::ColumnSpec;
use proptest::prelude::*;

const EXTENSIONS: [&str; 6] = ["xlsx", "xlsm", "xlsb", "xls", "ods", "csv"];

/// Opens and scans `bytes` saved as `name`: Ok or a clean error, never a panic.
fn read(dir: &Path, name: &str, bytes: &[u8]) {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    let outcome = std::panic::catch_unwind(|| {
        if let Ok(book) = Workbook::open(&path, None) {
            let _ = scan(
                &book,
                &ColumnSpec::Index(0),
                &ColumnSpec::Index(1),
                &ProgressBar::hidden(),
            );
        }
    });
    assert!(
        outcome.is_ok(),
        "reading {name} ({} bytes) panicked",
        bytes.len()
    );
}

fn valid_xlsx() -> Vec<u8> {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "Organisation").unwrap();
    sheet.write_string(0, 1, "Email").unwrap();
    for i in 1..40u32 {
        sheet.write_string(i, 0, format!("Org {i}")).unwrap();
        sheet
            .write_string(i, 1, format!("p{i}@example.fr"))
            .unwrap();
        sheet.write_number(i, 2, f64::from(i) * 1.5).unwrap();
    }
    book.save_to_buffer().unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..4096), ext in 0usize..6) {
        let dir = tempfile::tempdir().unwrap();
        read(dir.path(), &format!("f.{}", EXTENSIONS[ext]), &bytes);
    }

    #[test]
    fn damaged_workbooks_never_panic(
        flips in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..16),
        cut in any::<prop::sample::Index>(),
        truncate in any::<bool>(),
    ) {
        let mut bytes = valid_xlsx();
        for (at, value) in flips {
            let i = at.index(bytes.len());
            bytes[i] = value;
        }
        if truncate {
            let keep = cut.index(bytes.len());
            bytes.truncate(keep);
        }
        let dir = tempfile::tempdir().unwrap();
        read(dir.path(), "damaged.xlsx", &bytes);
    }
}

#[test]
fn known_troublesome_inputs() {
    let dir = tempfile::tempdir().unwrap();
    // A zip signature and nothing else; an OLE signature and nothing else;
    // a CSV with an unterminated quote and invalid UTF-8.
    read(dir.path(), "zip.xlsx", b"PK\x03\x04");
    read(
        dir.path(),
        "ole.xls",
        &[0xD0, 0xCF, 0x11, 0xE0, 0xA1, 0xB1, 0x1A, 0xE1],
    );
    read(dir.path(), "quote.csv", b"\"Acme,a@b.fr\n\xff\xfe,x\n");
    read(
        dir.path(),
        "ods.ods",
        b"PK\x05\x06\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0",
    );
}
