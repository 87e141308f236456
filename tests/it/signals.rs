//! Ctrl-C (SIGINT) and SIGTERM, one rule for every command: the first stops
//! the command cleanly (what is in flight finishes and is recorded, what was
//! done is printed) and exits 130 (143 after SIGTERM); a second exits at
//! once; a command with nothing in flight exits at once. Signals are sent
//! with kill(1) to the real binary, against the stack and a scripted SMTP
//! server.

use crate::common;

use std::collections::HashSet;
use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use common::deliver::{count, emails, finish, numbered_addresses, queued_campaign, signal, spawn};
use common::smtp_server::{Action, ScriptedSmtp};
use common::{json_of, new_user, stderr, stdout};

/// The recipients whose transaction the server saw begin (a `RCPT TO:`).
fn started(server: &ScriptedSmtp) -> HashSet<String> {
    server
        .envelope_lines()
        .iter()
        .filter_map(|l| {
            let upper = l.to_ascii_uppercase();
            upper.strip_prefix("RCPT TO:")?;
            let arg = l["RCPT TO:".len()..].trim();
            let inner = arg.strip_prefix('<')?.split('>').next()?;
            Some(inner.to_ascii_lowercase())
        })
        .collect()
}

/// `deliver` over 3 connections to a server that holds its answer to each
/// message for `hold`; returns once 3 transactions have begun.
async fn delivering_slowly(
    prefix: &str,
    hold: Duration,
) -> (String, ScriptedSmtp, std::process::Child) {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = numbered_addresses(&user, prefix, 20);
    let campaign = queued_campaign(&stack, &user, &to).await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, hold).await;
    let child = spawn(
        &stack,
        &user.token,
        &[
            "--json",
            "campaigns",
            "deliver",
            &campaign,
            "--rate",
            "0",
            "--concurrency",
            "3",
        ],
        &server.url(),
    );
    let waiting = Instant::now();
    while started(&server).len() < 3 {
        assert!(
            waiting.elapsed() < Duration::from_secs(30),
            "the transactions never began"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Well inside the server's wait for the end of the message.
    tokio::time::sleep(Duration::from_millis(300)).await;
    (campaign, server, child)
}

/// The first signal during a slow DATA: every transaction begun ends `sent`
/// or `failed` (none released, none left unknown), the others are
/// `pending` again, the summary says interrupted, and the exit code is
/// `code`.
async fn stops_cleanly_on(sig: &str, code: i32, prefix: &str) {
    let hold = Duration::from_secs(2);
    let (campaign, server, child) = delivering_slowly(prefix, hold).await;
    let in_flight = started(&server);
    signal(&child, sig);
    let (o, waited) = finish(child).await;
    assert_eq!(o.status.code(), Some(code), "{}", stderr(&o));
    // It waited for the server's answers instead of leaving at once.
    assert!(
        waited >= hold / 2,
        "exited after {waited:?}, before the answers"
    );
    let summary = json_of(&o);
    assert_eq!(summary["interrupted"], true, "{summary}");

    let begun = started(&server);
    assert!(begun.is_superset(&in_flight));
    let rows = emails(&campaign).await;
    assert_eq!(rows.len(), 20);
    for recipient in &begun {
        let status = &rows[recipient].status;
        assert!(
            status == "sent" || status == "failed",
            "{recipient} began its transaction and ended {status}"
        );
    }
    for (recipient, row) in &rows {
        if !begun.contains(recipient) {
            assert_eq!(row.status, "pending", "{recipient} was never tried");
        }
    }
    assert_eq!(count(&rows, "sending"), 0, "nothing left unknown: {rows:?}");
    let accepted = server.accepted_count();
    assert_eq!(
        accepted.len(),
        begun.len(),
        "every message begun was answered"
    );
    assert_eq!(count(&rows, "sent"), accepted.len());
    assert_eq!(summary["sent"], accepted.len(), "{summary}");
    // Released: claimed, not tried, pending again (the pending ones also
    // count any email this run had not claimed yet).
    assert!(
        summary["released"].as_u64().unwrap() as usize <= count(&rows, "pending"),
        "{summary}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_during_a_slow_data_finishes_what_began_and_exits_130() {
    stops_cleanly_on("-INT", 130, "i").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_stops_deliver_the_same_way_and_exits_143() {
    stops_cleanly_on("-TERM", 143, "t").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_ctrl_c_during_the_wait_quits_at_once_with_130() {
    let hold = Duration::from_secs(4);
    let (_campaign, server, child) = delivering_slowly("q", hold).await;
    signal(&child, "-INT");
    tokio::time::sleep(Duration::from_millis(300)).await;
    signal(&child, "-INT");
    let (o, waited) = finish(child).await;
    eprintln!("second Ctrl-C: exited {waited:?} after it");
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(
        waited < Duration::from_secs(1),
        "a second Ctrl-C quits at once, not after {waited:?}"
    );
    assert!(
        server.accepted().is_empty(),
        "it did not wait for the server's answers"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_import_reads_a_big_file_imports_nothing_and_exits_130() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("big.csv");
    {
        use std::io::Write;
        let mut w = std::io::BufWriter::new(std::fs::File::create(&file).unwrap());
        writeln!(w, "Organisation,Email").unwrap();
        for i in 0..1_000_000 {
            writeln!(w, "Org {},p{i}@example.fr", i % 37).unwrap();
        }
    }
    // The rejects file is written beside it from the start of the reading
    // (as a temporary file, renamed once the reading is done).
    let out = dir.path().join("out");
    std::fs::create_dir(&out).unwrap();
    let rejects = out.join("rejects.csv");
    let mut child = common::command(&stack, dir.path())
        .args(["--json", "import"])
        .arg(&file)
        .arg("--rejects")
        .arg(&rejects)
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while std::fs::read_dir(&out).unwrap().next().is_none() {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the reading never began"
        );
        assert!(child.try_wait().unwrap().is_none(), "it ended already");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    signal(&child, "-INT");
    let (o, _) = finish(child).await;
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("nothing was imported"),
        "{}",
        stderr(&o)
    );
    assert!(contacts_empty(&user).await, "nothing was sent");
    let left: Vec<_> = std::fs::read_dir(&out).unwrap().collect();
    assert!(left.is_empty(), "no temporary file left: {left:?}");
    std::fs::remove_file(&file).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_while_import_sends_prints_one_json_summary_and_exits_130() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    let mut text = String::from("Organisation,Email\n");
    for i in 0..30_000 {
        text.push_str(&format!("Org {},s{i}@example.fr\n", i % 37));
    }
    std::fs::write(&file, text).unwrap();
    let child = common::command(&stack, dir.path())
        .args(["--json", "import"])
        .arg(&file)
        .args(["--batch-size", "50"])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while contacts_empty(&user).await {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "the import never began writing"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "-INT");
    let (o, _) = finish(child).await;
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    // One document: the counts of what was imported, and why it stopped.
    let summary = json_of(&o);
    assert_eq!(summary["interrupted"], true, "{summary}");
    let written = common::contacts_of(&user).await.len() as u64;
    assert!(written < 30_000, "stopped before the end ({written})");
    assert_eq!(summary["contacts_created"], written, "{summary}");
}

async fn contacts_empty(user: &common::User) -> bool {
    common::contacts_of(user).await.is_empty()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_ends_campaigns_watch_with_130_after_whole_json_lines() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = common::command(&stack, dir.path())
        .args([
            "--json",
            "campaigns",
            "watch",
            "--mode",
            "poll",
            "--interval",
            "0.5",
        ])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Read its lines as they come; interrupt after the second refresh.
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let lines = std::thread::spawn(move || {
        let mut all = Vec::new();
        for line in reader.lines() {
            let line = line.unwrap();
            let _ = tx.send(line.clone());
            all.push(line);
        }
        all
    });
    for _ in 0..2 {
        rx.recv_timeout(Duration::from_secs(20))
            .expect("the watch printed a refresh");
    }
    signal(&child, "-INT");
    let (o, waited) = finish(child).await;
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(waited < Duration::from_secs(5), "stopped after {waited:?}");
    let lines = lines.join().unwrap();
    assert!(lines.len() >= 2);
    for line in &lines {
        let value: serde_json::Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("not a whole JSON document ({e}): {line:?}"));
        assert!(value.is_object(), "{line}");
    }
}

/// A command with nothing in flight to finish (here `contacts list`,
/// waiting for a server that never answers) exits 130 at the first Ctrl-C.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctrl_c_with_nothing_in_flight_exits_130_at_once() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let held = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let keep = held.clone();
    let silent = tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            keep.lock().unwrap().push(socket);
        }
    });
    let stack = common::stack();
    let user = new_user(&common::ready().await).await;
    let dir = tempfile::tempdir().unwrap();
    let child = common::command_for(&url, &stack.anon_key, dir.path())
        .args(["--json", "contacts", "list"])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = Instant::now();
    while held.lock().unwrap().is_empty() {
        assert!(
            waiting.elapsed() < Duration::from_secs(20),
            "it never asked the server"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    signal(&child, "-INT");
    let (o, waited) = finish(child).await;
    assert_eq!(o.status.code(), Some(130), "{}", stderr(&o));
    assert!(waited < Duration::from_secs(1), "exited after {waited:?}");
    assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    silent.abort();
}
