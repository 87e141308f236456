//! `mailsync contacts export` and `mailsync campaigns report` against the
//! local stack: the real binary, the REST API under each user's JWT, the
//! files read back with calamine and the csv crate, and the export imported
//! again to check that nothing changes.

use crate::common;

use std::path::Path;

use calamine::{open_workbook, Data, Reader, Xlsx};
use common::{json_of, mailsync, new_user, rest, run_as, stderr, stdout, Stack, User};
use reqwest::Method;
use serde_json::{json, Value};

/// Organisations and emails that a spreadsheet or a careless export would
/// mangle: formulas, unicode, white space, no organisation.
const TRICKY: &[(Option<&str>, &str)] = &[
    (
        Some("=HYPERLINK(\"http://evil\",\"x\")"),
        "formula@example.fr",
    ),
    (Some("+33 1 23 45 67 89"), "plus@example.fr"),
    (Some("-minus SARL"), "-dash@example.fr"),
    (Some("@mention GmbH"), "at@example.fr"),
    (Some("École Über 東京 🚀"), "unicode@example.fr"),
    (Some("Ärzte, \"Quoted\" & Co"), "quoted@example.fr"),
    (Some("'apostrophe"), "apostrophe@example.fr"),
    (None, "noorg@example.fr"),
];

/// `TRICKY` plus `bulk` plain contacts (several pages), as the user.
async fn seed(stack: &Stack, user: &User, bulk: usize) {
    let mut rows: Vec<Value> = TRICKY
        .iter()
        .map(|(org, email)| json!({"email": email, "organization_name": org}))
        .collect();
    rows.extend((0..bulk).map(|i| {
        json!({"email": format!("bulk{i:05}@example.fr"),
               "organization_name": format!("Org {}", i % 7)})
    }));
    for chunk in rows.chunks(1000) {
        common::insert_as(stack, user, "contacts", json!(chunk)).await;
    }
}

/// The user's contacts (email, organisation) read directly, ordered by email.
async fn stored(user: &User) -> Vec<(String, Option<String>, String)> {
    common::admin()
        .await
        .query(
            "select email, organization_name, updated_at::text from public.contacts
             where user_id = $1 order by email",
            &[&user.id],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect()
}

fn xlsx_rows(path: &Path, sheet: &str) -> Vec<Vec<String>> {
    let mut book: Xlsx<_> = open_workbook(path).unwrap();
    let range = book.worksheet_range(sheet).unwrap();
    range
        .rows()
        .map(|r| {
            r.iter()
                .map(|c| match c {
                    Data::Empty => String::new(),
                    Data::String(s) => s.clone(),
                    Data::Float(f) => f.to_string(),
                    Data::Int(i) => i.to_string(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect()
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    csv::ReaderBuilder::new()
        .has_headers(false)
        .from_reader(text.as_bytes())
        .records()
        .map(|r| r.unwrap().iter().map(str::to_string).collect())
        .collect()
}

/// Checks an export's rows (header included) against the database.
fn check_layout(rows: &[Vec<String>], expected: &[(String, Option<String>, String)]) {
    assert_eq!(
        rows[0],
        ["organization", "email", "created_at", "updated_at", "id"]
    );
    assert_eq!(rows.len() - 1, expected.len(), "every contact, once");
    for (row, (email, org, _)) in rows[1..].iter().zip(expected) {
        assert_eq!(&row[1], &mailsync::spreadsheet::neutralize(email));
        let org = org.clone().unwrap_or_default();
        assert_eq!(&row[0], &mailsync::spreadsheet::neutralize(&org));
        // A formula-like cell never starts the way a formula does.
        for cell in row {
            assert!(!cell.starts_with(FORMULA_START), "{cell:?}");
        }
    }
}

async fn round_trip(extension: &str) {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    // 2 500 contacts and the tricky ones: three pages of 1000.
    seed(&stack, &user, 2500).await;
    let before = stored(&user).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(format!("contacts.{extension}"));
    let file = file.to_str().unwrap();

    let o = run_as(&stack, &user, &["--json", "contacts", "export", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = json_of(&o);
    assert_eq!(summary["contacts"], before.len());
    assert_eq!(summary["format"], extension);
    assert!(summary["pages"].as_u64().unwrap() >= 3, "{summary}");

    let rows = if extension == "xlsx" {
        xlsx_rows(Path::new(file), "contacts")
    } else {
        csv_rows(&std::fs::read_to_string(file).unwrap())
    };
    check_layout(&rows, &before);

    // Importing the export changes nothing: every contact unchanged.
    let o = run_as(&stack, &user, &["--json", "import", file, "--strict"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json_of(&o);
    assert_eq!(report["contacts_unchanged"], before.len(), "{report}");
    assert_eq!(report["contacts_created"], 0);
    assert_eq!(report["contacts_updated"], 0);
    assert_eq!(report["organizations_created"], 0);
    assert_eq!(stored(&user).await, before, "not a row touched");
}

#[tokio::test]
async fn xlsx_export_imports_back_unchanged() {
    round_trip("xlsx").await;
}

#[tokio::test]
async fn csv_export_imports_back_unchanged() {
    round_trip("csv").await;
}

/// What starts a formula in a spreadsheet's cell.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// Reads `bytes` as a spreadsheet would with each separator it may split a
/// CSV file on (`,` in most of the world, `;` in France and much of
/// Europe, tab): no field may start a formula. Returns the fields found by
/// the `,` reading.
fn no_field_starts_a_formula(bytes: &[u8]) -> Vec<Vec<String>> {
    for separator in [b',', b';', b'\t'] {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(separator)
            .has_headers(false)
            .flexible(true)
            .from_reader(bytes);
        for record in reader.records() {
            for field in record.unwrap().iter() {
                assert!(
                    !field.starts_with(FORMULA_START),
                    "split on {:?}, a field starts a formula: {field:?}\n{}",
                    separator as char,
                    String::from_utf8_lossy(bytes)
                );
            }
        }
    }
    csv_rows(std::str::from_utf8(bytes).unwrap())
}

/// Organisations that start a formula after a separator other than the
/// first character: an export splits on `,`, French Excel on `;`.
const SEPARATED: &[(&str, &str)] = &[
    ("Acme;=1+1", "semicolon@example.fr"),
    ("Acme;-2;+3;@SUM(A1)", "several@example.fr"),
    ("Beta,=1+1", "comma@example.fr"),
    ("Gamma \"=1\";=2", "quote@example.fr"),
    ("Delta;'=kept apostrophe", "apostrophe-after@example.fr"),
    ("Epsilon;=cmd|' /C calc'!A0", "dde@example.fr"),
];

/// `contacts export x.csv` and the import's rejects file, each opened with
/// `,`, `;` and tab as the separator: no field starts a formula, and the
/// `,` reading still imports back unchanged.
#[tokio::test]
async fn csv_export_and_rejects_start_no_formula_whatever_the_separator() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed(&stack, &user, 0).await;
    let rows: Vec<Value> = SEPARATED
        .iter()
        .map(|(org, email)| json!({"email": email, "organization_name": org}))
        .collect();
    common::insert_as(&stack, &user, "contacts", json!(rows)).await;
    let before = stored(&user).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contacts.csv");
    let file = file.to_str().unwrap();

    let o = run_as(&stack, &user, &["contacts", "export", file]);
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = no_field_starts_a_formula(&std::fs::read(file).unwrap());
    check_layout(&rows, &before);
    let text = std::fs::read_to_string(file).unwrap();
    assert!(text.contains("Acme;'=1+1,semicolon@example.fr"), "{text}");

    let o = run_as(&stack, &user, &["--json", "import", file, "--strict"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json_of(&o);
    assert_eq!(report["contacts_unchanged"], before.len(), "{report}");
    assert_eq!(stored(&user).await, before, "not a row touched");

    // The rejects file: invalid emails and their organisations as given.
    let input = dir.path().join("input.csv");
    std::fs::write(
        &input,
        "organization,email\n\
         Acme;=1+1,x;=2+2\n\
         \"Beta,-3\",\"bad\t@4\"\n\
         \"two\n=lines\",\"y\r+5\"\n\
         Fine,fine@example.fr\n",
    )
    .unwrap();
    let rejects = dir.path().join("rejects.csv");
    let o = run_as(
        &stack,
        &user,
        &[
            "--json",
            "import",
            input.to_str().unwrap(),
            "--rejects",
            rejects.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let report = json_of(&o);
    assert_eq!(report["rejects"].as_array().unwrap().len(), 3, "{report}");
    let rows = no_field_starts_a_formula(&std::fs::read(&rejects).unwrap());
    assert_eq!(rows.len(), 4, "{rows:?}");
    // Read back with the one rule, the rejects are the cells as given.
    let restored: Vec<(String, String)> = rows[1..]
        .iter()
        .map(|r| {
            (
                mailsync::spreadsheet::restore(&r[1]).to_string(),
                mailsync::spreadsheet::restore(&r[2]).to_string(),
            )
        })
        .collect();
    let reported: Vec<(String, String)> = report["rejects"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["organization"].as_str().unwrap().to_string(),
                r["email"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(restored, reported);
    assert_eq!(reported[0], ("Acme;=1+1".into(), "x;=2+2".into()));
}

#[tokio::test]
async fn stdout_export_of_one_organisation_holds_only_the_users_rows() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let other = new_user(&stack).await;
    seed(&stack, &user, 30).await;
    seed(&stack, &other, 30).await;

    // The organisation-name rule: case and spacing ignored.
    let o = run_as(
        &stack,
        &user,
        &[
            "contacts",
            "export",
            "-",
            "--organization",
            "  école über   東京 🚀",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let rows = csv_rows(&stdout(&o));
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(rows[1][0], "École Über 東京 🚀");
    assert_eq!(rows[1][1], "unicode@example.fr");

    // RLS: the other user's identical emails are not in the user's export.
    let o = run_as(&stack, &user, &["contacts", "export", "-"]);
    let rows = csv_rows(&stdout(&o));
    assert_eq!(rows.len() - 1, TRICKY.len() + 30);
    let ids: std::collections::HashSet<_> = rows[1..].iter().map(|r| r[4].clone()).collect();
    let theirs = common::admin()
        .await
        .query(
            "select id::text from public.contacts where user_id = $1",
            &[&other.id],
        )
        .await
        .unwrap();
    assert!(theirs.iter().all(|r| !ids.contains(&r.get::<_, String>(0))));

    // Unknown organisation, unknown extension, --json with stdout: clear errors.
    let o = run_as(
        &stack,
        &user,
        &["contacts", "export", "x.csv", "--organization", "Nope"],
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("no organisation named"));
    let o = run_as(&stack, &user, &["contacts", "export", "x.ods"]);
    assert_eq!(o.status.code(), Some(2));
    let o = run_as(&stack, &user, &["--json", "contacts", "export", "-"]);
    assert_eq!(o.status.code(), Some(2));
}

/// `contacts list` and `contacts export` with `--organization` find an
/// organisation's contacts by the organisation-name rule, whatever spelling
/// each contact was written with (through SQL or REST a contact keeps its
/// case), exactly those `campaigns send` counts; a name with a comma,
/// quotes and parentheses is one name.
#[tokio::test]
async fn list_and_export_of_an_organisation_find_every_spelling_send_counts() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let people = [
        ("a@acme.test", Some("Acme Corp")),
        ("b@acme.test", Some("ACME corp")),
        ("c@acme.test", Some("acme\u{a0}CORP")),
        ("d@decoy.test", Some("Acme Corporation")),
        ("e@dupont.test", Some("Dupont, \"Fils\" (SA)")),
        ("f@dupont.test", Some("DUPONT,  \"FILS\" (sa)")),
        ("g@none.test", None),
    ];
    let rows: Vec<Value> = people
        .iter()
        .map(|(email, org)| json!({"email": email, "organization_name": org}))
        .collect();
    common::insert_as(&stack, &user, "contacts", json!(rows)).await;

    for (typed, expected) in [
        (
            "ACME  corp",
            vec!["a@acme.test", "b@acme.test", "c@acme.test"],
        ),
        (
            "dupont, \"fils\" (SA)",
            vec!["e@dupont.test", "f@dupont.test"],
        ),
    ] {
        let listed = json_of(&run_as(
            &stack,
            &user,
            &["--json", "contacts", "list", "--organization", typed],
        ));
        let listed: Vec<&str> = listed
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["email"].as_str().unwrap())
            .collect();
        assert_eq!(listed, expected, "contacts list --organization {typed:?}");

        let o = run_as(
            &stack,
            &user,
            &["contacts", "export", "-", "--organization", typed],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let exported: Vec<String> = csv_rows(&stdout(&o))[1..]
            .iter()
            .map(|r| r[1].clone())
            .collect();
        assert_eq!(
            exported, expected,
            "contacts export --organization {typed:?}"
        );

        let (status, count) = rest(
            &stack,
            Method::POST,
            "rpc/count_send_recipients",
            Some(&user.token),
            Some(json!({ "organization": typed })),
            None,
        )
        .await;
        assert_eq!(status, 200, "{count}");
        assert_eq!(count["recipients"], expected.len(), "{typed:?}: {count}");
    }
}

#[tokio::test]
async fn a_failed_export_leaves_no_file() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.xlsx");
    // An expired token: the first page is refused.
    let expired = common::sign(&stack, &user.id, &user.email, -120);
    let o = mailsync(
        &stack,
        &["contacts", "export", file.to_str().unwrap()],
        &[("MAILSYNC_ACCESS_TOKEN", &expired)],
    );
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
}

#[tokio::test]
async fn campaign_report_workbook_reads_back() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed(&stack, &user, 1200).await;
    let total = TRICKY.len() + 1200;
    let o = run_as(
        &stack,
        &user,
        &[
            "--json",
            "campaigns",
            "create",
            "--name",
            "Rapport",
            "--subject",
            "S",
            "--content",
            "C",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let id = json_of(&o)["id"].as_str().unwrap().to_string();
    let o = run_as(&stack, &user, &["campaigns", "send", "Rapport", "--yes"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // Two delivered, one bounced with an error message, the rest pending.
    let (code, body) = rest(
        &stack,
        Method::PATCH,
        &format!("emails_sent?campaign_id=eq.{id}&recipient_email=in.(bulk00000@example.fr,bulk00001@example.fr)"),
        Some(&user.token),
        Some(json!({"status": "delivered"})),
        None,
    )
    .await;
    assert!(code == 204 || code == 200, "{code} {body}");
    let (code, body) = rest(
        &stack,
        Method::PATCH,
        &format!("emails_sent?campaign_id=eq.{id}&recipient_email=eq.formula@example.fr"),
        Some(&user.token),
        Some(json!({"status": "bounced", "error_message": "=550 no such user"})),
        None,
    )
    .await;
    assert!(code == 204 || code == 200, "{code} {body}");

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rapport.xlsx");
    let o = run_as(
        &stack,
        &user,
        &[
            "--json",
            "campaigns",
            "report",
            "Rapport",
            file.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["recipients"], total);

    let figures: std::collections::HashMap<String, String> = xlsx_rows(&file, "Campaign")
        .into_iter()
        .skip(1)
        .map(|r| (r[0].clone(), r[1].clone()))
        .collect();
    assert_eq!(figures["campaign"], "Rapport");
    assert_eq!(figures["id"], id);
    assert_eq!(figures["status"], "sending");
    assert_eq!(figures["total_emails"], total.to_string());
    assert_eq!(figures["delivered"], "2");
    assert_eq!(figures["bounced"], "1");
    assert_eq!(figures["pending"], (total - 3).to_string());

    let recipients = xlsx_rows(&file, "Recipients");
    assert_eq!(
        recipients[0],
        [
            "email",
            "organization",
            "status",
            "sent_at",
            "delivered_at",
            "error_message"
        ]
    );
    assert_eq!(recipients.len() - 1, total, "every recipient, once");
    let emails: std::collections::HashSet<_> =
        recipients[1..].iter().map(|r| r[0].clone()).collect();
    assert_eq!(emails.len(), total);
    let bounced = recipients
        .iter()
        .find(|r| r[0] == "formula@example.fr")
        .unwrap();
    assert_eq!(bounced[1], "'=HYPERLINK(\"http://evil\",\"x\")");
    assert_eq!(bounced[2], "bounced");
    assert_eq!(bounced[5], "'=550 no such user");
    assert_eq!(recipients.iter().filter(|r| r[2] == "delivered").count(), 2);

    // A report is a workbook; a CSV name is a usage error.
    let o = run_as(&stack, &user, &["campaigns", "report", "Rapport", "r.csv"]);
    assert_eq!(o.status.code(), Some(2));
}

/// A REST server whose row cap is `cap`: a proxy in front of the stack that
/// answers at most `cap` rows however many are asked for (as a project
/// with a lower `max_rows` does).
async fn capped_proxy(stack: &Stack, cap: usize) -> String {
    use axum::body::Bytes;
    use axum::extract::{OriginalUri, State};
    use axum::http::{HeaderMap, Method as AxMethod};
    use axum::response::IntoResponse;

    async fn forward(
        State((base, cap)): State<(String, usize)>,
        method: AxMethod,
        OriginalUri(uri): OriginalUri,
        headers: HeaderMap,
        body: Bytes,
    ) -> impl IntoResponse {
        let path = uri.path_and_query().map(|p| p.as_str()).unwrap_or("/");
        let mut request = reqwest::Client::new()
            .request(method.as_str().parse().unwrap(), format!("{base}{path}"))
            .body(body.to_vec());
        for name in [
            "apikey",
            "authorization",
            "content-type",
            "prefer",
            "accept",
        ] {
            if let Some(v) = headers.get(name) {
                request = request.header(name, v.as_bytes());
            }
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let bytes = response.bytes().await.unwrap();
        let body = match serde_json::from_slice::<Value>(&bytes) {
            Ok(Value::Array(rows)) if status == 200 => {
                serde_json::to_vec(&rows.into_iter().take(cap).collect::<Vec<_>>()).unwrap()
            }
            _ => bytes.to_vec(),
        };
        (
            axum::http::StatusCode::from_u16(status).unwrap(),
            [("content-type", "application/json")],
            body,
        )
    }

    let app = axum::Router::new()
        .fallback(forward)
        .with_state((stack.url.clone(), cap));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    url
}

// Multi-threaded: the proxy serves while the test waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_is_complete_whatever_the_servers_row_cap() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    seed(&stack, &user, 700).await;
    let before = stored(&user).await;
    let proxy = capped_proxy(&stack, 97).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("capped.csv");
    let o = mailsync(
        &stack,
        &["--json", "contacts", "export", file.to_str().unwrap()],
        &[
            ("MAILSYNC_ACCESS_TOKEN", &user.token),
            ("SUPABASE_URL", &proxy),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let summary = json_of(&o);
    assert_eq!(summary["contacts"], before.len());
    // 97 rows a page, then the empty page that ends the export.
    assert_eq!(
        summary["pages"].as_u64().unwrap() as usize,
        before.len().div_ceil(97) + 1
    );
    check_layout(&csv_rows(&std::fs::read_to_string(&file).unwrap()), &before);
}
