//! `mailsync import` and `mailsync contacts list` against the local stack:
//! workbooks generated here, the real binary, the real REST server under
//! each user's JWT, and the database checked directly afterwards.

use crate::common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use common::{
    contacts_of, import_counts, json_of, mailsync, new_user, organizations_of, rest, run_as,
    stderr, stdout, Stack, User,
};
use rust_xlsxwriter::{ExcelDateTime, Format, Workbook};

/// A cell of a generated sheet.
enum Cell<'a> {
    Text(&'a str),
    Number(f64),
    Bool(bool),
    Date(u16, u8, u8),
    Empty,
}
use Cell::{Empty, Number, Text};

fn write_xlsx(path: &Path, sheets: &[(&str, Vec<Vec<Cell>>)]) {
    let mut book = Workbook::new();
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (name, rows) in sheets {
        let sheet = book.add_worksheet().set_name(*name).unwrap();
        for (r, row) in rows.iter().enumerate() {
            for (c, cell) in row.iter().enumerate() {
                let (r, c) = (r as u32, c as u16);
                match cell {
                    Text(t) => {
                        sheet.write_string(r, c, *t).unwrap();
                    }
                    Number(n) => {
                        sheet.write_number(r, c, *n).unwrap();
                    }
                    Cell::Bool(b) => {
                        sheet.write_boolean(r, c, *b).unwrap();
                    }
                    Cell::Date(y, m, d) => {
                        let dt = ExcelDateTime::from_ymd(*y, *m, *d).unwrap();
                        sheet.write_datetime_with_format(r, c, &dt, &date).unwrap();
                    }
                    Empty => {}
                }
            }
        }
    }
    book.save(path).unwrap();
}

/// `import --json FILE --rejects REJECTS` as `user`.
fn import_json(stack: &Stack, user: &User, file: &Path, rejects: &Path) -> std::process::Output {
    run_as(
        stack,
        user,
        &[
            "--json",
            "import",
            path_str(file),
            "--rejects",
            path_str(rejects),
        ],
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// A sheet exercising every rule of the import contract.
fn messy_sheet() -> Vec<Vec<Cell<'static>>> {
    vec![
        vec![Text("Organisation"), Text("Courriel")],
        vec![Text("  Acme   Inc "), Text("  Jean.Dupont@Example.FR ")], // 2: trimmed, collapsed, lower-cased
        vec![Text("ACME inc"), Text("marie@example.fr")], // 3: same organisation, other case
        vec![Empty, Empty],                               // 4: blank
        vec![Number(1234.0), Text("num@example.fr")],     // 5: a number as a person sees it
        vec![Text("Beta"), Text("not-an-email")],         // 6: rejected
        vec![Text("Beta"), Empty],                        // 7: rejected, missing email
        vec![Empty, Text("solo@example.fr")],             // 8: no organisation
        vec![Text("Gamma"), Text("JEAN.DUPONT@example.fr")], // 9: duplicate of 2, wins
        vec![Cell::Date(2024, 3, 31), Text("date@example.fr")], // 10: a date as a person sees it
        vec![Cell::Bool(true), Text("bool@example.fr")],  // 11
        vec![Text("=1+1"), Text("@evil.example")],        // 12: rejected, formula-looking
    ]
}

#[tokio::test]
async fn every_rule_of_the_contract_and_a_second_import_is_a_no_op() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contacts.xlsx");
    write_xlsx(&file, &[("Feuille1", messy_sheet())]);
    let rejects = dir.path().join("rejects.csv");

    let first = import_json(&stack, &user, &file, &rejects);
    assert!(first.status.success(), "{}", stderr(&first));
    let report = json_of(&first);
    assert_eq!(report["sheet"], "Feuille1");
    assert!(report["file"].as_str().unwrap().ends_with("contacts.xlsx"));
    // rows, blank, invalid, duplicates, created, updated, unchanged, orgs
    assert_eq!(import_counts(&report), [11, 1, 3, 1, 6, 0, 0, 5]);
    let rows: Vec<u64> = report["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["row"].as_u64().unwrap())
        .collect();
    assert_eq!(rows, [6, 7, 12]);
    assert_eq!(report["rejects"][1]["reason"], "missing email");
    assert_eq!(report["rejects"][0]["email"], "not-an-email");

    let expected: Vec<(String, Option<String>)> = [
        ("bool@example.fr", Some("TRUE")),
        ("date@example.fr", Some("2024-03-31")),
        ("jean.dupont@example.fr", Some("Gamma")),
        ("marie@example.fr", Some("ACME inc")),
        ("num@example.fr", Some("1234")),
        ("solo@example.fr", None),
    ]
    .iter()
    .map(|(e, o)| (e.to_string(), o.map(str::to_string)))
    .collect();
    assert_eq!(contacts_of(&user).await, expected);
    // Row 2 lost to row 9, so "ACME inc" (row 3) is the spelling created.
    assert_eq!(
        organizations_of(&user).await,
        ["1234", "2024-03-31", "ACME inc", "Gamma", "TRUE"]
    );

    // The rejects file: neutralised so it cannot run formulas.
    let csv = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "row,organization,email,reason");
    assert_eq!(lines.len(), 4, "{csv}");
    assert!(lines[3].starts_with("12,'=1+1,'@evil.example,"), "{csv}");

    let second = run_as(&stack, &user, &["--json", "import", path_str(&file)]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(import_counts(&json_of(&second)), [11, 1, 3, 1, 0, 0, 6, 0]);
    assert_eq!(contacts_of(&user).await.len(), 6);
}

#[tokio::test]
async fn header_names_pick_the_columns_and_a_changed_organisation_is_an_update() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("export.csv");
    std::fs::write(
        &file,
        "\u{feff}Nom;Courriel;Entreprise\nA;a@example.fr;Acme\nB;b@example.fr;\n",
    )
    .unwrap();
    let args = [
        "--json",
        "import",
        path_str(&file),
        "--email-column",
        "courriel",
        "--org-column",
        "Entreprise",
    ];
    let first = run_as(&stack, &user, &args);
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(import_counts(&json_of(&first)), [2, 0, 0, 0, 2, 0, 0, 1]);

    std::fs::write(
        &file,
        "Nom;Courriel;Entreprise\nA;a@example.fr;Beta\nB;b@example.fr;\n",
    )
    .unwrap();
    let second = run_as(&stack, &user, &args);
    assert_eq!(import_counts(&json_of(&second)), [2, 0, 0, 0, 0, 1, 1, 1]);
    assert_eq!(
        contacts_of(&user).await,
        vec![
            ("a@example.fr".to_string(), Some("Beta".to_string())),
            ("b@example.fr".to_string(), None)
        ]
    );

    let missing = run_as(
        &stack,
        &user,
        &["import", path_str(&file), "--email-column", "E-mail"],
    );
    assert_eq!(missing.status.code(), Some(2));
    let err = stderr(&missing);
    assert!(
        err.contains("E-mail") && err.contains("B \"Courriel\""),
        "{err}"
    );
}

/// An empty organisation cell means "not given", never "clear it": the
/// organisation a contact already has is kept.
#[tokio::test]
async fn an_empty_organisation_cell_keeps_the_organisation_a_contact_has() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    std::fs::write(&file, "Acme,a@example.fr\nBeta,b@example.fr\n").unwrap();
    let first = run_as(&stack, &user, &["--json", "import", path_str(&file)]);
    assert!(first.status.success(), "{}", stderr(&first));
    std::fs::write(&file, ",a@example.fr\nBeta,b@example.fr\n").unwrap();
    let second = run_as(&stack, &user, &["--json", "import", path_str(&file)]);
    assert!(second.status.success(), "{}", stderr(&second));
    assert_eq!(
        contacts_of(&user).await,
        vec![
            ("a@example.fr".to_string(), Some("Acme".to_string())),
            ("b@example.fr".to_string(), Some("Beta".to_string()))
        ]
    );
}

#[tokio::test]
async fn two_users_importing_the_same_file_get_separate_contacts() {
    let stack = common::ready().await;
    let (a, b) = (new_user(&stack).await, new_user(&stack).await);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.xlsx");
    write_xlsx(&file, &[("S", messy_sheet())]);
    for user in [&a, &b] {
        let o = run_as(&stack, user, &["--json", "import", path_str(&file)]);
        assert_eq!(import_counts(&json_of(&o))[4..], [6, 0, 0, 5]);
    }
    assert_eq!(contacts_of(&a).await, contacts_of(&b).await);
    assert_eq!(organizations_of(&a).await.len(), 5);
    assert_eq!(organizations_of(&b).await.len(), 5);
    // B lists only B's contacts.
    let listed = run_as(&stack, &b, &["--json", "contacts", "list", "--limit", "0"]);
    assert_eq!(json_of(&listed).as_array().unwrap().len(), 6);
}

#[tokio::test]
async fn dry_run_and_strict_write_nothing() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.xlsx");
    write_xlsx(&file, &[("S", messy_sheet())]);

    let dry = run_as(
        &stack,
        &user,
        &["--json", "import", path_str(&file), "--dry-run"],
    );
    assert!(dry.status.success(), "{}", stderr(&dry));
    assert_eq!(import_counts(&json_of(&dry))[..4], [11, 1, 3, 1]);
    let strict = run_as(&stack, &user, &["import", path_str(&file), "--strict"]);
    assert_eq!(strict.status.code(), Some(4), "{}", stderr(&strict));
    assert!(
        stderr(&strict).contains("3 rows rejected"),
        "{}",
        stderr(&strict)
    );
    assert!(contacts_of(&user).await.is_empty());
    assert!(organizations_of(&user).await.is_empty());

    // A clean file passes --strict.
    let clean = dir.path().join("clean.csv");
    std::fs::write(&clean, "Org,Email\nAcme,a@example.fr\n").unwrap();
    let ok = run_as(&stack, &user, &["import", path_str(&clean), "--strict"]);
    assert!(ok.status.success(), "{}", stderr(&ok));
    assert_eq!(contacts_of(&user).await.len(), 1);
}

/// Each bad input: a message naming the file, a non-zero exit, nothing written.
#[tokio::test]
async fn bad_files_are_refused_with_a_clear_message_and_nothing_written() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let p = |name: &str| dir.path().join(name);

    std::fs::write(p("text.xlsx"), "Organisation,Email\nAcme,a@example.fr\n").unwrap();
    std::fs::write(p("empty.xlsx"), "").unwrap();
    let mut good = Vec::new();
    write_xlsx(
        &p("good.xlsx"),
        &[("Contacts", messy_sheet()), ("Autre", vec![])],
    );
    std::fs::File::open(p("good.xlsx"))
        .unwrap()
        .read_to_end(&mut good)
        .unwrap();
    std::fs::write(p("truncated.xlsx"), &good[..good.len() / 2]).unwrap();
    write_xlsx(
        &p("header-only.xlsx"),
        &[("S", vec![vec![Text("Organisation"), Text("Email")]])],
    );
    write_xlsx(
        &p("no-column-b.xlsx"),
        &[("S", vec![vec![Text("Acme")], vec![Text("Beta")]])],
    );
    write_encrypted(&p("protected.xlsx"));
    std::fs::write(p("contacts.pdf"), "%PDF-1.4").unwrap();

    let cases: [(&str, &[&str], i32, &str); 9] = [
        ("missing.xlsx", &[], 1, "no such file"),
        ("text.xlsx", &[], 1, "not a readable workbook"),
        ("empty.xlsx", &[], 1, "empty"),
        ("truncated.xlsx", &[], 1, "not a readable workbook"),
        (
            "good.xlsx",
            &["--sheet", "Nope"],
            2,
            "\"Contacts\", \"Autre\"",
        ),
        ("header-only.xlsx", &[], 1, "no data rows"),
        ("no-column-b.xlsx", &[], 1, "no column B"),
        ("protected.xlsx", &[], 1, "password-protected"),
        ("contacts.pdf", &[], 2, "unsupported file type"),
    ];
    for (name, extra, code, message) in cases {
        let path = p(name);
        let mut args = vec!["import", path_str(&path)];
        args.extend_from_slice(extra);
        let o = run_as(&stack, &user, &args);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(code), "{name}: {err}");
        assert!(
            err.contains(name),
            "{name}: the message names the file: {err}"
        );
        assert!(err.contains(message), "{name}: {err}");
        assert!(!err.contains("panicked"), "{name}: {err}");
    }
    assert!(contacts_of(&user).await.is_empty());
}

/// What Excel writes for a workbook with a password: an OLE compound file
/// holding `EncryptionInfo` and `EncryptedPackage` instead of a zip.
fn write_encrypted(path: &Path) {
    let mut file = cfb::create(path).unwrap();
    file.create_stream("/EncryptionInfo")
        .unwrap()
        .write_all(&[4, 0, 4, 0, 0x40, 0, 0, 0])
        .unwrap();
    file.create_stream("/EncryptedPackage")
        .unwrap()
        .write_all(&[0u8; 4096])
        .unwrap();
    file.flush().unwrap();
}

#[tokio::test]
async fn a_refused_token_exits_3_and_says_to_log_in() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let expired = common::sign(&stack, &user.id, &user.email, -60);
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    std::fs::write(&file, "Acme,a@example.fr\n").unwrap();
    let o = mailsync(
        &stack,
        &["import", path_str(&file)],
        &[("MAILSYNC_ACCESS_TOKEN", &expired)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // The local stack has no Auth server: the advice is a new token.
    assert!(
        stderr(&o).contains("scripts/local-stack.sh token"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains("run the same command again"));
    assert!(!stderr(&o).contains(&expired));
    let none = mailsync(&stack, &["import", path_str(&file)], &[]);
    assert_eq!(none.status.code(), Some(3));
    assert!(contacts_of(&user).await.is_empty());
}

/// A TCP proxy in front of the stack's API that breaks connections: once
/// `budget` bytes from the client have gone through, it cuts every
/// connection; with `recover`, later connections work again, without it
/// they are refused for good (the server is gone).
struct FaultyProxy {
    port: u16,
    cut: Arc<AtomicBool>,
}

impl FaultyProxy {
    fn start(upstream: u16, budget: usize, recover: bool) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let sent = Arc::new(AtomicUsize::new(0));
        let cut = Arc::new(AtomicBool::new(false));
        let cut_flag = cut.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if cut_flag.load(Ordering::SeqCst) && !recover {
                    drop(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue;
                };
                let (sent, cut) = (sent.clone(), cut_flag.clone());
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let mut buf = [0u8; 8192];
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        let before = sent.fetch_add(n, Ordering::SeqCst);
                        if before < budget
                            && before + n >= budget
                            && !cut.swap(true, Ordering::SeqCst)
                            || (cut.load(Ordering::SeqCst) && !recover)
                        {
                            let _ = c_read.shutdown(std::net::Shutdown::Both);
                            let _ = s_write.shutdown(std::net::Shutdown::Both);
                            break;
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Both);
                });
            }
        });
        Self { port, cut }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

fn api_port(stack: &Stack) -> u16 {
    url::Url::parse(&stack.url).unwrap().port().unwrap()
}

fn big_csv(dir: &Path, rows: usize) -> PathBuf {
    let path = dir.join("big.csv");
    let mut text = String::from("Organisation,Email\n");
    for i in 0..rows {
        text.push_str(&format!("Org {},person{i:05}@example.fr\n", i % 37));
    }
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn a_dropped_connection_is_retried_and_the_import_completes() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = big_csv(dir.path(), 1000);
    let proxy = FaultyProxy::start(api_port(&stack), 20_000, true);
    let o = mailsync(
        &stack,
        &["--json", "import", path_str(&file), "--batch-size", "100"],
        &[
            ("MAILSYNC_ACCESS_TOKEN", &user.token),
            ("SUPABASE_URL", &proxy.url()),
        ],
    );
    assert!(
        proxy.cut.load(Ordering::SeqCst),
        "the proxy cut a connection"
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json_of(&o);
    let c = import_counts(&report);
    // A batch whose answer was lost may have been committed before the
    // retry: it then counts as unchanged. Every contact is there once.
    assert_eq!(c[4] + c[6], 1000, "{report}");
    assert_eq!(contacts_of(&user).await.len(), 1000);
}

/// The exit code of an import whose connections break mid-request after
/// every retry: a failure (1), the hint saying how to finish.
const CUT_EXIT: i32 = 1;

#[tokio::test]
async fn an_import_cut_off_midway_completes_when_run_again() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = big_csv(dir.path(), 1000);
    let proxy = FaultyProxy::start(api_port(&stack), 30_000, false);
    let cut = mailsync(
        &stack,
        &["import", path_str(&file), "--batch-size", "100"],
        &[
            ("MAILSYNC_ACCESS_TOKEN", &user.token),
            ("SUPABASE_URL", &proxy.url()),
        ],
    );
    let err = stderr(&cut);
    assert_eq!(cut.status.code(), Some(CUT_EXIT), "{err}");
    let partial = contacts_of(&user).await.len();
    assert!(
        partial > 0 && partial < 1000,
        "{partial} imported before the cut"
    );
    assert_eq!(partial % 100, 0, "a batch is all or nothing");
    // Row 1 is the header. The message names the earliest batch that failed
    // and says where to pick up: every row before it is imported. With two
    // batches in flight, the one after it may have been committed too.
    let first: usize = err
        .split("importing rows ")
        .nth(1)
        .and_then(|rest| rest.split('–').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no failed row range in: {err}"));
    assert_eq!((first - 2) % 100, 0, "{err}");
    assert!(
        partial == first - 2 || partial == first - 2 + 100,
        "{partial} imported, failed batch starts at row {first}: {err}"
    );
    assert!(
        err.contains(&format!("importing rows {first}–{} of", first + 99)),
        "{err}"
    );
    assert!(
        err.contains(&format!(
            "rows before {first} are imported; run the same command again"
        )),
        "{err}"
    );

    let again = run_as(
        &stack,
        &user,
        &["--json", "import", path_str(&file), "--batch-size", "100"],
    );
    assert!(again.status.success(), "{}", stderr(&again));
    let c = import_counts(&json_of(&again));
    assert_eq!(
        (c[4], c[5], c[6]),
        (1000 - partial as u64, 0, partial as u64)
    );
    let rows = contacts_of(&user).await;
    assert_eq!(rows.len(), 1000);
    assert_eq!(rows[0].0, "person00000@example.fr");
    assert_eq!(organizations_of(&user).await.len(), 37);
}

#[tokio::test]
async fn contacts_list_pages_past_the_servers_row_cap_and_filters_by_organisation() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = big_csv(dir.path(), 2500);
    assert!(run_as(&stack, &user, &["import", path_str(&file)])
        .status
        .success());
    let all = run_as(
        &stack,
        &user,
        &["--json", "contacts", "list", "--limit", "0"],
    );
    let all = json_of(&all);
    let all = all.as_array().unwrap();
    assert_eq!(all.len(), 2500);
    assert!(all
        .windows(2)
        .all(|w| w[0]["email"].as_str() < w[1]["email"].as_str()));
    let some = json_of(&run_as(
        &stack,
        &user,
        &["--json", "contacts", "list", "--limit", "1200"],
    ));
    assert_eq!(some.as_array().unwrap().len(), 1200);
    let org = json_of(&run_as(
        &stack,
        &user,
        &[
            "--json",
            "contacts",
            "list",
            "--organization",
            "org  3",
            "--limit",
            "0",
        ],
    ));
    let org = org.as_array().unwrap();
    // 2500 rows over 37 organisations: Org 3 has rows 3, 40, 77, ...
    assert_eq!(org.len(), (0..2500).filter(|i| i % 37 == 3).count());
    assert!(org.iter().all(|c| c["organization_name"] == "Org 3"));
    let table = run_as(&stack, &user, &["contacts", "list", "--limit", "3"]);
    assert!(
        stdout(&table).contains("person00000@example.fr"),
        "{}",
        stdout(&table)
    );
    assert!(stdout(&table).contains("3 contacts"));
}

#[tokio::test]
async fn ctrl_c_stops_after_the_batch_in_flight_and_a_re_run_finishes() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = big_csv(dir.path(), 30_000);
    let child = common::command(&stack, dir.path())
        .args(["import", path_str(&file), "--batch-size", "50"])
        .env("MAILSYNC_ACCESS_TOKEN", &user.token)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Interrupt once the first batches are in.
    let started = std::time::Instant::now();
    while contacts_of(&user).await.is_empty() {
        assert!(
            started.elapsed().as_secs() < 20,
            "the import never started writing"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let kill = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let output = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(130), "{err}");
    assert!(
        err.contains("interrupted") && err.contains("run the same command again"),
        "{err}"
    );
    let partial = contacts_of(&user).await.len();
    assert!(partial < 30_000, "stopped before the end ({partial})");
    assert_eq!(partial % 50, 0, "only whole batches are written");

    let again = run_as(&stack, &user, &["--json", "import", path_str(&file)]);
    assert!(again.status.success(), "{}", stderr(&again));
    let c = import_counts(&json_of(&again));
    assert_eq!((c[4], c[6]), (30_000 - partial as u64, partial as u64));
    assert_eq!(contacts_of(&user).await.len(), 30_000);
}

/// Rejects are kept in memory up to a bound (the summary and `--json` list
/// the first 1000); `--rejects` receives every one, and `invalid` counts
/// every one.
#[tokio::test]
async fn rejects_past_the_memory_bound_all_reach_the_rejects_file() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("c.csv");
    let mut text = String::from("Organisation,Email\n");
    for i in 0..12_000 {
        if i % 8 == 0 {
            text.push_str(&format!("Org {i},not-an-email-{i}\n"));
        } else {
            text.push_str(&format!("Org {},p{i}@example.fr\n", i % 5));
        }
    }
    std::fs::write(&file, text).unwrap();
    let rejects = dir.path().join("rejects.csv");
    let o = import_json(&stack, &user, &file, &rejects);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json_of(&o);
    assert_eq!(report["invalid"], 1500);
    assert_eq!(report["contacts_created"], 10_500);
    let listed = report["rejects"].as_array().unwrap();
    assert_eq!(listed.len(), 1000, "the first 1000 are listed");
    assert_eq!(listed[0]["row"], 2);
    assert_eq!(listed[999]["row"], 2 + 999 * 8);
    let written = std::fs::read_to_string(&rejects).unwrap();
    let lines: Vec<&str> = written.lines().collect();
    assert_eq!(lines.len(), 1 + 1500, "a header and every reject");
    assert!(lines[1500].starts_with(&format!("{},", 2 + 1499 * 8)));
    assert!(
        lines[1500].contains("not-an-email-11992"),
        "{}",
        lines[1500]
    );
}

/// When nearly every row is rejected the import stops (exit 4, nothing
/// written), and the rejects file is still written: it is how a user sees
/// why.
#[tokio::test]
async fn the_rejects_file_is_written_when_nearly_all_rows_are_rejected() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("swapped.csv");
    let mut text = String::from("Email,Company\n");
    for i in 0..3000 {
        text.push_str(&format!("p{i}@example.fr,Org {i}\n"));
    }
    text.push_str("x@example.fr,y@example.fr\n");
    std::fs::write(&file, text).unwrap();
    let rejects = dir.path().join("rejects.csv");
    for dry in [true, false] {
        let _ = std::fs::remove_file(&rejects);
        let mut args = vec!["import", path_str(&file), "--rejects", path_str(&rejects)];
        if dry {
            args.push("--dry-run");
        }
        let o = run_as(&stack, &user, &args);
        assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
        assert!(
            stderr(&o).contains("3,000 of 3,001 rows rejected"),
            "{}",
            stderr(&o)
        );
        let written = std::fs::read_to_string(&rejects).unwrap();
        assert_eq!(written.lines().count(), 1 + 3000);
        assert!(
            written.contains("\n2,p0@example.fr,Org 0,invalid email"),
            "{written:.300}"
        );
    }
    assert!(contacts_of(&user).await.is_empty());
}

#[tokio::test]
async fn batches_in_flight_change_the_speed_and_never_the_counts() {
    let stack = common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    let file = big_csv(dir.path(), 1000);
    let import = |user: &User, in_flight: &str| {
        let o = run_as(
            &stack,
            user,
            &[
                "--json",
                "import",
                path_str(&file),
                "--batch-size",
                "50",
                "--in-flight",
                in_flight,
            ],
        );
        assert!(
            o.status.success(),
            "--in-flight {in_flight}: {}",
            stderr(&o)
        );
        import_counts(&json_of(&o))
    };
    let (one, eight) = (new_user(&stack).await, new_user(&stack).await);
    assert_eq!(import(&one, "1"), [1000, 0, 0, 0, 1000, 0, 0, 37]);
    assert_eq!(import(&eight, "8"), [1000, 0, 0, 0, 1000, 0, 0, 37]);
    // Twenty batches, eight at a time, over contacts that are all there.
    assert_eq!(import(&one, "8"), [1000, 0, 0, 0, 0, 0, 1000, 0]);
    assert_eq!(contacts_of(&one).await, contacts_of(&eight).await);
    assert_eq!(organizations_of(&one).await.len(), 37);
    for bad in ["0", "9"] {
        let o = run_as(
            &stack,
            &one,
            &["import", path_str(&file), "--in-flight", bad],
        );
        assert_eq!(
            o.status.code(),
            Some(2),
            "--in-flight {bad}: {}",
            stderr(&o)
        );
        assert!(stderr(&o).contains("--in-flight"), "{}", stderr(&o));
    }
}

/// Organisation cells with every kind of white space, as a sheet brings
/// them: what import stores for each is what the database's rule
/// (`mailsync_org_name`, `mailsync_org_key`) makes of the same cell, and
/// `campaigns send` (its prompt's count) finds them by any spelling of the
/// name.
#[tokio::test]
async fn import_stores_organisation_names_by_the_databases_rule() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("orgs.xlsx");
    let cells = [
        ("nbsp@example.fr", "Acme\u{a0}Corp"),
        ("spaces@example.fr", "  acme   corp "),
        ("tabs@example.fr", "ACME\t\tCORP"),
        ("em@example.fr", "Acme\u{2003}Corp\u{202f}"),
        ("blank@example.fr", "\u{a0}\u{3000}\t"),
        ("empty@example.fr", ""),
        ("zero@example.fr", "Zero\u{200b}Width"),
        ("ecole@example.fr", "\u{2028}École  Saint_Jean"),
    ];
    let rows: Vec<Vec<Cell>> = cells
        .iter()
        .map(|(email, org)| vec![Text(org), Text(email)])
        .collect();
    write_xlsx(&file, &[("Feuille1", rows)]);
    let o = run_as(&stack, &user, &["--json", "import", path_str(&file)]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["organizations_created"], 3);

    let db = common::admin().await;
    for (email, cell) in cells {
        let (stored_key, rule_key, rule_name): (Option<String>, Option<String>, Option<String>) = {
            let row = db
                .query_one(
                    "select lower(c.organization_name), public.mailsync_org_key($3),
                            public.mailsync_org_name($3)
                       from public.contacts c where c.user_id = $1 and c.email = $2",
                    &[&user.id, &email, &cell],
                )
                .await
                .unwrap();
            (row.get(0), row.get(1), row.get(2))
        };
        assert_eq!(stored_key, rule_key, "{cell:?}");
        assert!(
            rule_name
                .as_deref()
                .is_none_or(|n| !n.starts_with(' ') && !n.ends_with(' ') && !n.contains("  ")),
            "{cell:?} -> {rule_name:?}"
        );
    }
    // One organisation per key, spelled as one of its cells.
    let organizations = organizations_of(&user).await;
    let keys: Vec<String> = organizations.iter().map(|o| o.to_lowercase()).collect();
    assert_eq!(
        keys,
        ["acme corp", "zero\u{200b}width", "école saint_jean"],
        "{organizations:?}"
    );
    for typed in ["ACME\u{a0}corp", " acme\u{2003}\u{2003}Corp\t"] {
        let (status, count) = rest(
            &stack,
            reqwest::Method::POST,
            "rpc/count_send_recipients",
            Some(&user.token),
            Some(serde_json::json!({ "organization": typed })),
            None,
        )
        .await;
        assert_eq!(status, 200, "{count}");
        assert_eq!(
            count["organization"],
            organizations[0].as_str(),
            "{typed:?}"
        );
        assert_eq!(count["recipients"], 4, "{typed:?}: {count}");
    }
}

/// The database's white space (`mailsync_org_name`) is exactly Rust's
/// (`char::is_whitespace`, Unicode's White_Space), which import uses to trim
/// its cells and tell a blank row: every Unicode scalar value is tried as
/// the separator of "a" and "b".
#[tokio::test]
async fn the_databases_white_space_is_unicodes_white_space() {
    common::ready().await;
    let collapsed: Vec<i32> = common::column(
        "select g from generate_series(1, 1114111) g
          where (g < 55296 or g > 57343)
            and public.mailsync_org_name('a' || chr(g) || 'b') = 'a b'
          order by g",
        &[],
    )
    .await;
    let unicode: Vec<i32> = (1..=0x10FFFFu32)
        .filter_map(char::from_u32)
        .filter(|c| c.is_whitespace())
        .map(|c| c as i32)
        .collect();
    assert_eq!(collapsed, unicode);
}
