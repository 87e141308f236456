//! `mailsync bounces scan PATH…` through the binary: .eml files, Maildirs,
//! mbox files and directories, the human lines and the `--json` document,
//! an unreadable PATH, and a hostile mailbox read in bounded memory. No
//! server needed. The parser's field-by-field tests are in
//! `src/bounces/tests.rs`.

use std::path::Path;

use serde_json::{json, Value};

use crate::common;

use common::{json_of, stderr, stdout};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/tests/fixtures/bounces/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn scan(dir: &Path, args: &[&str]) -> std::process::Output {
    common::command_for("http://127.0.0.1:1", common::DEFAULT_ANON_KEY, dir)
        .args(["bounces", "scan"])
        .args(args)
        .output()
        .unwrap()
}

/// An mbox holding `messages`, `From ` lines in their bodies escaped (mboxrd).
fn mbox(messages: &[Vec<u8>]) -> Vec<u8> {
    let mut out = Vec::new();
    for message in messages {
        out.extend(b"From MAILER-DAEMON Sat Dec  5 10:00:00 2026\n");
        for line in message.split_inclusive(|b| *b == b'\n') {
            let quoted = line.iter().take_while(|b| **b == b'>').count();
            if line[quoted..].starts_with(b"From ") {
                out.push(b'>');
            }
            out.extend(line);
        }
        if !out.ends_with(b"\n") {
            out.push(b'\n');
        }
        out.push(b'\n');
    }
    out
}

fn sources(report: &Value) -> Vec<String> {
    report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["source"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn eml_maildir_and_mbox_are_read_with_their_origins() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let maildir = root.join("Maildir");
    for sub in ["cur", "new", "tmp"] {
        std::fs::create_dir_all(maildir.join(sub)).unwrap();
    }
    std::fs::write(
        maildir.join("cur/1.host:2,S"),
        fixture("vendor/ses-bounce.eml"),
    )
    .unwrap();
    std::fs::write(maildir.join("new/2.host"), fixture("vendor/yahoo-arf.eml")).unwrap();
    std::fs::write(maildir.join("tmp/3.host"), fixture("vendor/qmail.eml")).unwrap();
    std::fs::write(root.join("single.eml"), fixture("vendor/exim-failed.eml")).unwrap();
    std::fs::write(
        root.join("export.mbox"),
        mbox(&[
            fixture("vendor/qmail.eml"),
            fixture("not-reports/out-of-office.eml"),
            // Its body has a `From ` line: escaped in the mbox, not a new message.
            b"From: a@example.com\nSubject: hello\n\nFrom now on, write to b@example.com.\n"
                .to_vec(),
        ]),
    )
    .unwrap();

    let out = scan(root, &["--json", "Maildir", "single.eml", "export.mbox"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json_of(&out);
    assert_eq!(
        sources(&report),
        vec![
            "Maildir/cur/1.host:2,S",
            "Maildir/new/2.host",
            "single.eml",
            "export.mbox:1",
            "export.mbox:2",
            "export.mbox:3",
        ]
    );
    let messages = &report["messages"];
    assert_eq!(
        messages[0],
        json!({
            "source": "Maildir/cur/1.host:2,S",
            "kind": "delivery_status",
            "format": "rfc3464",
            "email_id": "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a",
            "original_message_id": "8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a@news.example.com",
            "recipients": [{
                "address": "bounce@simulator.amazonses.com",
                "action": "failed",
                "status": "5.1.1",
                "diagnostic": "550 5.1.1 user unknown"
            }],
            "problem": null
        })
    );
    assert_eq!(messages[1]["kind"], "complaint");
    assert_eq!(messages[1]["format"], "arf");
    assert_eq!(
        messages[1]["email_id"],
        "4b5c6d7e-8f9a-4b0c-9d1e-2f3a4b5c6d7e"
    );
    assert_eq!(
        messages[1]["recipients"][0]["address"],
        "reader.one@yahoo.com"
    );
    assert_eq!(messages[1]["recipients"][0]["action"], "complained");
    assert_eq!(messages[2]["format"], "exim");
    assert_eq!(messages[2]["recipients"].as_array().unwrap().len(), 2);
    assert_eq!(messages[3]["format"], "qmail");
    assert_eq!(
        messages[3]["email_id"],
        "2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"
    );
    assert_eq!(messages[4]["format"], "auto_reply");
    assert_eq!(messages[4]["kind"], "not_a_report");
    assert_eq!(messages[4]["recipients"], json!([]));
    assert_eq!(messages[5]["format"], "none");
    assert_eq!(
        report["counts"],
        json!({
            "messages": 6, "delivery_status": 3, "complaint": 1, "not_a_report": 2,
            "recipients": 6, "failed": 5, "delayed": 0, "delivered": 0, "complained": 1,
            "with_problem": 0
        })
    );

    // The directory as a whole: the same messages, its own order.
    let whole = json_of(&scan(root, &["--json", "."]));
    assert_eq!(whole["counts"]["messages"], 6);
}

#[test]
fn human_output_has_a_line_per_message_and_per_recipient() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("q.eml"), fixture("vendor/qmail.eml")).unwrap();
    std::fs::write(dir.path().join("r.eml"), fixture("not-reports/reply.eml")).unwrap();
    let out = scan(dir.path(), &["q.eml", "r.eml"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        "q.eml: delivery report (qmail)\n\
         \x20 jane@example.org: failed 5.1.1 Sorry, no mailbox here by that name. (#5.1.1)\n\
         \x20 bob@example.org: failed 5.7.1 192.0.2.55 does not like recipient. Remote host said: 550 5.7.1 <bob@example.org>... Relaying denied Giving up on 192.0.2.55.\n\
         r.eml: not a report (none)\n\
         2 messages: 1 delivery reports, 0 complaints, 1 not reports\n"
    );
}

#[test]
fn a_path_that_cannot_be_read_is_an_error_naming_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = scan(dir.path(), &["missing.mbox"]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(err.contains("missing.mbox: cannot read"), "{err}");
    assert!(err.contains("Maildir"), "{err}");
    assert!(stdout(&out).is_empty());
}

#[test]
fn a_hostile_mailbox_gets_a_line_per_message_in_bounded_memory() {
    let dir = tempfile::tempdir().unwrap();
    let mut huge = b"From: MAILER-DAEMON@x.example\nSubject: failure notice\n\n".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 50 * 1024 * 1024));
    let mut deep = b"From: a@x.example\nContent-Type: multipart/mixed; boundary=b0\n\n".to_vec();
    for i in 1..10_000 {
        deep.extend(
            format!(
                "--b{}\nContent-Type: multipart/mixed; boundary=b{i}\n\n",
                i - 1
            )
            .bytes(),
        );
    }
    let mut wide = b"From: a@x.example\nContent-Type: multipart/mixed; boundary=w\n\n".to_vec();
    for _ in 0..10_000 {
        wide.extend(b"--w\nContent-Type: text/plain\n\nx\n");
    }
    let broken = b"From: MAILER-DAEMON@x.example\nSubject: =?bogus?Q?=ZZ?=\nContent-Type: multipart/report; report-type=delivery-status; boundary=q\n\n--q\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; \xff\xfe\n\nFinal-Recipient: rfc822; u@example.com\nAction: failed\nStatus: 5.1.1\n".to_vec();
    std::fs::write(
        dir.path().join("hostile.mbox"),
        mbox(&[huge, deep, wide, broken, fixture("vendor/qmail.eml")]),
    )
    .unwrap();

    let mut cmd = common::command_for("http://127.0.0.1:1", common::DEFAULT_ANON_KEY, dir.path());
    cmd.args(["--json", "bounces", "scan", "hostile.mbox"]);
    let measured = common::output_measured(cmd, 2 << 30);
    let out = &measured.output;
    assert!(out.status.success(), "{}", stderr(out));
    let report = json_of(out);
    let messages = report["messages"].as_array().unwrap();
    assert_eq!(messages.len(), 5);
    let problem = |i: usize| messages[i]["problem"].as_str().unwrap_or("").to_string();
    assert!(
        problem(0).contains("only its first 2097152 were read"),
        "{}",
        problem(0)
    );
    assert!(problem(1).contains("MIME parts"), "{}", problem(1));
    assert!(problem(2).contains("MIME parts"), "{}", problem(2));
    assert_eq!(messages[3]["recipients"][0]["address"], "u@example.com");
    assert_eq!(messages[4]["format"], "qmail");
    // The 50 MB message is streamed past, never held.
    assert!(
        measured.peak_mib < 64.0,
        "peak {:.1} MiB",
        measured.peak_mib
    );
    println!(
        "hostile mailbox (50 MB message, 10 000 deep, 10 000 parts): {:.2} s, peak {:.1} MiB",
        measured.elapsed.as_secs_f64(),
        measured.peak_mib
    );
}

#[test]
fn every_fixture_is_read_without_a_problem() {
    let dir = tempfile::tempdir().unwrap();
    let fixtures = format!("{}/tests/fixtures/bounces", env!("CARGO_MANIFEST_DIR"));
    let out = scan(dir.path(), &["--json", &fixtures]);
    assert!(out.status.success(), "{}", stderr(&out));
    let report = json_of(&out);
    let real: Vec<&Value> = report["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["source"].as_str().unwrap().contains("/real/"))
        .collect();
    // Postfix and Exim, as they wrote them.
    assert_eq!(real.len(), 9);
    for message in &real {
        assert_eq!(message["format"], "rfc3464", "{message}");
        assert_eq!(
            message["recipients"].as_array().unwrap().len(),
            1,
            "{message}"
        );
        assert!(message["recipients"][0]["status"].is_string(), "{message}");
        assert!(
            message["recipients"][0]["diagnostic"].is_string(),
            "{message}"
        );
    }
    assert_eq!(report["counts"]["with_problem"], 0);
    assert_eq!(report["counts"]["not_a_report"], 3);
    assert_eq!(report["counts"]["complaint"], 3);
    assert_eq!(report["counts"]["delivery_status"], 19);
}
