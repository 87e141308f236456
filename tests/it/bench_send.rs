//! `scripts/bench-send` at a small size, so its checks run in CI: each run
//! times the floor (one INSERT ... SELECT as the user) and `mailsync
//! campaigns send` through the REST API, each on freshly inserted contacts,
//! the side that runs first alternating; it checks what each side stored and
//! prints the ratio, the calls and the slowest call, then the medians. A send
//! that stores one email too few ends the benchmark with exit 1 and the
//! reason.

use crate::common;

use common::{stderr, stdout};

const N: u32 = 2000;

/// The benchmark with `bin` as mailsync, two runs of each state in `states`.
async fn bench_send(bin: &str, states: &str) -> std::process::Output {
    let (bin, states) = (bin.to_string(), states.to_string());
    tokio::task::spawn_blocking(move || {
        std::process::Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/bench-send"))
            .args([N.to_string(), "2".to_string()])
            .env("MAILSYNC_BIN", bin)
            .env("STATES", states)
            .output()
            .expect("running scripts/bench-send")
    })
    .await
    .unwrap()
}

#[tokio::test]
async fn bench_send_checks_what_it_times_at_a_small_size() {
    common::ready().await;
    let out = bench_send(common::BIN, "fresh vacuumed").await;
    let (text, err) = (stdout(&out), stderr(&out));
    assert!(out.status.success(), "exit {:?}\n{text}\n{err}", out.status);
    // Per state: one line per run, each side first in turn, then the medians.
    let rows: Vec<Vec<&str>> = text
        .lines()
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        .filter(|f| f.first() == Some(&"2000"))
        .collect();
    assert_eq!(rows.len(), 6, "{text}");
    let num = |f: &Vec<&str>, i: usize| f[i].parse::<f64>().unwrap();
    for (state, lines) in [("fresh", &rows[0..3]), ("vacuumed", &rows[3..6])] {
        assert!(lines.iter().all(|f| f[1] == state), "{text}");
        assert_eq!((lines[0][2], lines[0][3]), ("1", "floor"), "{text}");
        assert_eq!((lines[1][2], lines[1][3]), ("2", "send"), "{text}");
        assert_eq!(lines[2][2], "med", "{text}");
        for run in &lines[0..2] {
            // floor (s), send (s), ratio = send / floor, calls, slowest (ms).
            let (floor, send, ratio) = (num(run, 4), num(run, 5), num(run, 6));
            assert!(floor > 0.0 && send > 0.0, "{text}");
            assert!(
                (ratio - send / floor).abs() <= 0.01 + 0.02 * ratio,
                "{text}"
            );
            assert!(num(run, 7) >= 1.0, "{text}");
            let slowest = num(run, 8);
            assert!(slowest > 0.0 && slowest < 8000.0, "{text}");
        }
        // The medians line: floor, send, ratio, slowest. The median ratio of
        // two runs is their mean; the slowest is the larger of the two.
        let mean = (num(&lines[0], 6) + num(&lines[1], 6)) / 2.0;
        assert!((num(&lines[2], 5) - mean).abs() <= 0.011, "{text}");
        let slowest = num(&lines[0], 8).max(num(&lines[1], 8));
        assert_eq!(num(&lines[2], 6), slowest, "{text}");
    }
    assert!(
        text.contains("medians of 2 run(s); ratio: median of the per-run ratios"),
        "{text}"
    );

    // A mailsync that loses one email after queueing: the benchmark counts
    // what was stored and says so instead of timing it.
    let dir = tempfile::tempdir().unwrap();
    let lossy = dir.path().join("lossy-mailsync");
    std::fs::write(
        &lossy,
        format!(
            "#!/bin/sh\n\"{}\" \"$@\" || exit $?\n\
             psql -X -q \"$SUPABASE_DB_URL\" -c \"delete from public.emails_sent where id = \
             (select id from public.emails_sent where campaign_id = '$4' limit 1)\" >/dev/null\n",
            common::BIN
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&lossy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = bench_send(lossy.to_str().unwrap(), "fresh").await;
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    assert!(
        stderr(&out).contains("bench-send: send: the campaign has 1999 emails, expected 2000"),
        "{}",
        stderr(&out)
    );
}
