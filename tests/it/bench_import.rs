//! `scripts/bench-import` at a small size, so its checks run in CI: each
//! run checks the `\copy` row count, the import's contacts and both sides'
//! organisation counts, the side that runs first alternates, and the summary
//! is the median of the per-run ratios; a sheet and a CSV that disagree end
//! the benchmark with exit 1 and the reason.

use crate::common;

// The benchmark's own generator: the sheets are the ones it times.
#[path = "../../examples/make_contacts.rs"]
#[allow(dead_code)]
mod make_contacts;

use std::path::Path;

use common::{stderr, stdout};

const ROWS: u32 = 2000;

/// The benchmark with this build, the sheets in `sheets`, two runs.
async fn bench_import(sheets: &Path) -> std::process::Output {
    let sheets = sheets.to_path_buf();
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-import"))
            .arg(ROWS.to_string())
            .env("MAILSYNC_BIN", common::BIN)
            .env("SHEETS", &sheets)
            .env("RUNS", "2")
            .env_remove("SPLIT")
            .output()
            .expect("running scripts/bench-import")
    })
    .await
    .unwrap()
}

fn sheets(dir: &Path) -> (String, String) {
    let xlsx = dir.join(format!("{ROWS}.xlsx")).display().to_string();
    let csv = dir.join(format!("{ROWS}.csv")).display().to_string();
    make_contacts::clean(ROWS, &xlsx, Some(&csv)).unwrap();
    (xlsx, csv)
}

#[tokio::test]
async fn bench_import_checks_what_it_times_at_a_small_size() {
    common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    let (_, csv) = sheets(dir.path());
    let out = bench_import(dir.path()).await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "exit {:?}\n{text}\n{err}", out.status);
    // One line per run, each side first in turn, then the medians.
    let runs: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.first() == Some(&"2000"))
        .collect();
    assert_eq!(runs.len(), 3, "{text}");
    assert_eq!((runs[0][1], runs[0][2]), ("1", "copy"), "{text}");
    assert_eq!((runs[1][1], runs[1][2]), ("2", "import"), "{text}");
    assert_eq!(runs[2][1], "med", "{text}");
    assert!(
        text.contains("medians of 2 run(s); ratio: median of the per-run ratios"),
        "{text}"
    );
    // The median ratio is the median of the two per-run ratios (their mean).
    let ratio = |f: &Vec<&str>, i: usize| f[i].parse::<f64>().unwrap();
    let mean = (ratio(&runs[0], 5) + ratio(&runs[1], 5)) / 2.0;
    assert!((ratio(&runs[2], 4) - mean).abs() <= 0.011, "{text}");

    // A CSV with one organisation more than the sheet: \copy and the import
    // no longer agree, and the benchmark says so instead of timing it.
    let mut rows = std::fs::read_to_string(&csv).unwrap();
    rows = rows.replacen("Organisation 000000,", "Organisation extra,", 1);
    std::fs::write(&csv, rows).unwrap();
    let out = bench_import(dir.path()).await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("bench-import: organisations: \\copy created 101, import 100"),
        "{}",
        stderr(&out)
    );
}
