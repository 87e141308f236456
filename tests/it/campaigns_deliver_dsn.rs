//! `mailsync campaigns deliver` asks for delivery reports (RFC 3461): the
//! exact MAIL and RCPT lines a scripted SMTP server receives when it offers
//! DSN and when it does not, with `--verp`, and the xtext of addresses with
//! `+`, `=`, other symbols and letters beyond ASCII. The envelope sender is
//! MAILSYNC_RETURN_PATH, the From: header MAILSYNC_FROM. The campaigns are
//! queued and the outcomes recorded through the real binary and the REST
//! API; the emails' ids are read back as the superuser only to check.

use crate::campaigns_deliver::{addresses, queued_campaign, run};
use crate::common;

use std::collections::HashMap;

use common::smtp_server::{Action, Phase, ScriptedSmtp};
use common::{new_user, stderr, Stack, User};
use serde_json::Value;

const FROM: &str = "Acme <news@acme.example>";
/// The envelope sender, apart from the From: header.
const RETURN_PATH: &str = "bounces@acme.example";

/// Each email of the campaign by recipient: its id and Message-ID.
async fn email_ids(campaign: &str) -> HashMap<String, (String, String)> {
    common::admin()
        .await
        .query(
            "select recipient_email, id::text, coalesce(message_id, '')
               from public.emails_sent where campaign_id = $1::text::uuid",
            &[&campaign],
        )
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.get(0), (r.get(1), r.get(2))))
        .collect()
}

/// The MAIL and RCPT lines of each transaction (one recipient each), by
/// recipient as the RCPT line names it.
fn transactions(server: &ScriptedSmtp) -> HashMap<String, (String, String)> {
    let lines = server.envelope_lines();
    let mut out = HashMap::new();
    for pair in lines.chunks(2) {
        let [mail, rcpt] = pair else {
            panic!("a MAIL line without its RCPT line: {lines:#?}");
        };
        assert!(mail.starts_with("MAIL FROM:<"), "{lines:#?}");
        assert!(rcpt.starts_with("RCPT TO:<"), "{lines:#?}");
        let to = rcpt["RCPT TO:<".len()..].split('>').next().unwrap();
        let before = out.insert(to.to_string(), (mail.clone(), rcpt.clone()));
        assert!(before.is_none(), "{to} was sent twice: {lines:#?}");
    }
    out
}

/// `deliver --json --concurrency 1` of `campaign` through `server` as
/// MAILSYNC_FROM [`FROM`] with MAILSYNC_RETURN_PATH `return_path`, with
/// `extra` arguments; the summary.
async fn deliver_from(
    stack: &Stack,
    user: &User,
    server: &ScriptedSmtp,
    return_path: &str,
    campaign: &str,
    extra: &[&str],
) -> (std::process::Output, Value) {
    let mut args = vec!["--json", "campaigns", "deliver", campaign];
    args.extend_from_slice(&["--rate", "0", "--concurrency", "1"]);
    args.extend_from_slice(extra);
    let url = server.url();
    let env = [
        ("MAILSYNC_SMTP_URL", url.as_str()),
        ("MAILSYNC_FROM", FROM),
        ("MAILSYNC_RETURN_PATH", return_path),
    ];
    let o = run(stack, user, &args, &env).await;
    let summary = serde_json::from_str(common::stdout(&o).trim()).unwrap_or(Value::Null);
    (o, summary)
}

/// The From: header of a received message.
fn from_header(data: &str) -> &str {
    data.lines()
        .find_map(|l| l.strip_prefix("From: "))
        .unwrap_or_else(|| panic!("no From: header in {data}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_dsn_each_email_asks_for_reports_with_its_id_and_its_address_in_xtext() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["plain", "o+hara", "x=y", "a!b#c%d"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Default::default()).await;
    server.offer_dsn();

    let (o, summary) = deliver_from(&stack, &user, &server, RETURN_PATH, &campaign, &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["sent"], 4, "{summary}");
    assert!(!stderr(&o).contains("DSN"), "{}", stderr(&o));

    let ids = email_ids(&campaign).await;
    let sent = transactions(&server);
    assert_eq!(sent.len(), 4, "{sent:#?}");
    let tag = to[0].split_once('.').unwrap().1; // "<tag>@example.test"
    let orcpt = [
        ("plain", format!("rfc822;plain.{tag}")),
        ("o+hara", format!("rfc822;o+2Bhara.{tag}")),
        ("x=y", format!("rfc822;x+3Dy.{tag}")),
        ("a!b#c%d", format!("rfc822;a!b#c%d.{tag}")),
    ];
    for (name, orcpt) in orcpt {
        let address = format!("{name}.{tag}");
        let (id, message_id) = &ids[&address];
        let (mail, rcpt) = &sent[&address];
        assert_eq!(
            mail,
            &format!("MAIL FROM:<bounces@acme.example> RET=HDRS ENVID={id}")
        );
        assert_eq!(
            rcpt,
            &format!("RCPT TO:<{address}> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT={orcpt}")
        );
        // The third way to match a report: the Message-ID, <id@domain>.
        assert_eq!(message_id, &format!("<{id}@acme.example>"));
    }
    for received in server.accepted() {
        assert_eq!(from_header(&received.data), FROM);
    }
    // DSN is learnt once per connection, from its one EHLO: the check's
    // and the sender's.
    assert_eq!(server.connections(), 2);
    assert_eq!(server.ehlos(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_beyond_ascii_goes_with_smtputf8_and_its_utf8_original_recipient() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["josé"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Default::default()).await;
    server.offer_dsn();

    let (o, summary) = deliver_from(&stack, &user, &server, RETURN_PATH, &campaign, &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["sent"], 1, "{summary}");
    let (id, _) = &email_ids(&campaign).await[&to[0]];
    let local = to[0].strip_prefix("josé").unwrap();
    let sent = transactions(&server);
    let (mail, rcpt) = &sent[&to[0]];
    // The To: header carries the address in UTF-8 (RFC 6532): 8BITMIME too.
    assert_eq!(
        mail,
        &format!("MAIL FROM:<bounces@acme.example> SMTPUTF8 BODY=8BITMIME RET=HDRS ENVID={id}")
    );
    assert_eq!(
        rcpt,
        &format!(
            "RCPT TO:<{}> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=utf-8;jos\\x{{E9}}{local}",
            to[0]
        )
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_dsn_mail_and_rcpt_are_plain_and_the_outcomes_are_unchanged() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["one", "gone", "two"]);
    let gone = to[1].clone();
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    // No DSN offered: a DSN parameter would be refused with 555 and the
    // emails would fail.
    let server = ScriptedSmtp::start(
        move |rcpt, phase, _| match (rcpt == gone, phase) {
            (true, Phase::Rcpt) => Action::Reply("550 5.1.1 no such user".into()),
            _ => Action::Accept,
        },
        Default::default(),
    )
    .await;

    let (o, summary) = deliver_from(&stack, &user, &server, RETURN_PATH, &campaign, &[]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        (&summary["sent"], &summary["bounced"], &summary["failed"]),
        (&Value::from(2), &Value::from(1), &Value::from(0)),
        "{summary}"
    );
    // The person is told that no delivery report will come back.
    let err = stderr(&o);
    assert!(
        err.contains("does not offer delivery reports (DSN)"),
        "{err}"
    );
    assert!(err.contains(RETURN_PATH), "{err}");
    let sent = transactions(&server);
    for address in &to {
        let (mail, rcpt) = &sent[address];
        assert_eq!(mail, "MAIL FROM:<bounces@acme.example>");
        assert_eq!(rcpt, &format!("RCPT TO:<{address}>"));
    }
    // The refusal ended its transaction (RSET), not the connection: the
    // check's and the sender's, one each.
    let lines = server.envelope_lines();
    assert_eq!(server.connections(), 2, "{lines:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verp_gives_each_email_a_return_path_carrying_its_id() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["ana", "bo+x"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Default::default()).await;
    server.offer_dsn();

    let (o, summary) =
        deliver_from(&stack, &user, &server, RETURN_PATH, &campaign, &["--verp"]).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(summary["sent"], 2, "{summary}");
    let ids = email_ids(&campaign).await;
    let sent = transactions(&server);
    for address in &to {
        let (id, _) = &ids[address];
        let (mail, rcpt) = &sent[address];
        assert_eq!(
            mail,
            &format!("MAIL FROM:<bounces+{id}@acme.example> RET=HDRS ENVID={id}")
        );
        assert!(
            rcpt.starts_with(&format!(
                "RCPT TO:<{address}> NOTIFY=SUCCESS,FAILURE,DELAY ORCPT=rfc822;"
            )),
            "{rcpt}"
        );
    }
    // The header sender stays MAILSYNC_FROM.
    for received in server.accepted() {
        assert_eq!(from_header(&received.data), FROM);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verp_is_refused_when_the_return_path_already_has_a_plus() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let to = addresses(&user, &["ana"]);
    let campaign = queued_campaign(&stack, &user, &to, "S", "C").await;
    let server = ScriptedSmtp::start(|_, _, _| Action::Accept, Default::default()).await;

    let tagged = "bounces+list@acme.example";
    let (o, _) = deliver_from(&stack, &user, &server, tagged, &campaign, &["--verp"]).await;
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("--verp"), "{err}");
    assert!(err.contains(tagged), "{err}");
    assert!(err.contains("MAILSYNC_RETURN_PATH"), "{err}");
    // Refused before anything was claimed or sent.
    assert_eq!(server.connections(), 0);
    let ids = email_ids(&campaign).await;
    let status: String = common::admin()
        .await
        .query_one(
            "select status from public.emails_sent where id = $1::text::uuid",
            &[&ids[&to[0]].0],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(status, "pending");
}
