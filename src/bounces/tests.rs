//! Every fixture in tests/fixtures/bounces/{vendor,not-reports}, every field
//! of its report; then hostile input.

use std::time::{Duration, Instant};

use super::*;

fn fixture(path: &str) -> Report {
    let full = format!(
        "{}/tests/fixtures/bounces/{path}",
        env!("CARGO_MANIFEST_DIR")
    );
    parse(&std::fs::read(&full).unwrap())
}

fn some(s: &str) -> Option<String> {
    Some(s.to_string())
}

fn recipient(
    address: &str,
    action: Action,
    status: Option<&str>,
    diagnostic: Option<&str>,
) -> RecipientReport {
    RecipientReport {
        address: address.to_string(),
        original_recipient: None,
        action,
        status: status.map(str::to_string),
        diagnostic: diagnostic.map(str::to_string),
    }
}

fn report(format: Format, kind: Kind) -> Report {
    Report {
        format,
        kind,
        ..Report::empty()
    }
}

fn uuid(s: &str) -> Option<Uuid> {
    Some(Uuid::parse_str(s).unwrap())
}

/// One fixture of tests/fixtures/bounces/vendor/ and every field read from
/// it (`None`: the field is not read).
struct Vendor {
    /// What the fixture shows.
    what: &'static str,
    file: &'static str,
    read: (Format, Kind),
    message_id: &'static str,
    date: &'static str,
    reporting_mta: Option<&'static str>,
    envelope_id: Option<&'static str>,
    original_message_id: Option<&'static str>,
    return_token: Option<&'static str>,
    feedback_type: Option<&'static str>,
    recipients: Vec<RecipientReport>,
    /// The email the report names (`Some(None)`: it names none), where the
    /// fixture is there to show it.
    email_id: Option<Option<Uuid>>,
}

fn assert_vendor(vendor: Vendor) {
    let r = fixture(&format!("vendor/{}.eml", vendor.file));
    let (format, kind) = vendor.read;
    let expected = Report {
        message_id: some(vendor.message_id),
        date: some(vendor.date),
        reporting_mta: vendor.reporting_mta.map(str::to_string),
        envelope_id: vendor.envelope_id.map(str::to_string),
        original_message_id: vendor.original_message_id.map(str::to_string),
        return_token: vendor.return_token.map(str::to_string),
        feedback_type: vendor.feedback_type.map(str::to_string),
        recipients: vendor.recipients,
        ..report(format, kind)
    };
    assert_eq!(r, expected, "{}", vendor.what);
    if let Some(id) = vendor.email_id {
        assert_eq!(r.email_id(), id, "{}: the email", vendor.what);
    }
}

#[test]
fn vendor_reports_are_read_field_by_field() {
    for vendor in [
        Vendor {
            what: "an Office 365 NDR is a delivery-status report",
            file: "office365-ndr",
            read: (Format::Rfc3464, Kind::DeliveryStatus),
            message_id: "b1e2a5c4-1f0d-4d3c-9a8b-7e6f5d4c3b2a@DM6PR11MB4691.namprd11.prod.outlook.com",
            date: "2026-12-01T09:14:58Z",
            reporting_mta: Some("DM6PR11MB4691.namprd11.prod.outlook.com"),
            envelope_id: None,
            original_message_id: Some("6f1c2a4e-8b3d-4c5e-9f70-a1b2c3d4e5f6@news.example.com"),
            return_token: Some("6f1c2a4e-8b3d-4c5e-9f70-a1b2c3d4e5f6"),
            feedback_type: None,
            recipients: vec![recipient(
                "adele.vance@contoso.com",
                Action::Failed,
                Some("5.1.10"),
                Some("550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient Adele.Vance@contoso.com not found by SMTP address lookup"),
            )],
            email_id: Some(uuid("6f1c2a4e-8b3d-4c5e-9f70-a1b2c3d4e5f6")),
        },
        Vendor {
            what: "an Exchange 2010 text NDR: the administrators' section is read",
            file: "exchange2010-ndr",
            read: (Format::Exchange, Kind::DeliveryStatus),
            message_id: "0a1b2c3d4e5f@EX2010.fabrikam.com",
            date: "2026-12-02T14:03:11+01:00",
            reporting_mta: Some("EX2010.fabrikam.com"),
            envelope_id: None,
            original_message_id: Some("0b7e3d9a-2c4f-4a61-8e5d-3f2a1b0c9d8e@news.example.com"),
            return_token: None,
            feedback_type: None,
            recipients: vec![recipient(
                "kim.akers@fabrikam.com",
                Action::Failed,
                Some("5.1.1"),
                Some("kim.akers@fabrikam.com #550 5.1.1 RESOLVER.ADR.RecipientNotFound; not found ##"),
            )],
            email_id: None,
        },
        Vendor {
            what: "an Exchange 2003 text NDR: the code under the address is read",
            file: "exchange2003-ndr",
            read: (Format::Exchange, Kind::DeliveryStatus),
            message_id: "A1B2C3D4E5F6@mail.litwareinc.com",
            date: "2026-12-03T08:00:00-05:00",
            reporting_mta: None,
            envelope_id: None,
            original_message_id: None,
            return_token: None,
            feedback_type: None,
            recipients: vec![recipient(
                "dan.park@litwareinc.com",
                Action::Failed,
                Some("5.1.1"),
                Some("<mail.litwareinc.com #5.1.1 smtp;550 5.1.1 <Dan.Park@litwareinc.com>... User unknown>"),
            )],
            // Nothing in it names the email: no id rather than a wrong one.
            email_id: Some(None),
        },
        Vendor {
            what: "a Gmail text bounce takes the other server's answer",
            file: "gmail-failure",
            read: (Format::Gmail, Kind::DeliveryStatus),
            message_id: "000000000000a1b2c3d4e5f6a7b8@google.com",
            date: "2026-12-04T10:20:30Z",
            reporting_mta: None,
            envelope_id: None,
            original_message_id: Some("9c8b7a6f-5e4d-4c3b-a2a1-0f9e8d7c6b5a@news.example.com"),
            return_token: Some("9c8b7a6f-5e4d-4c3b-a2a1-0f9e8d7c6b5a"),
            feedback_type: None,
            recipients: vec![recipient(
                "no.such.user@example.net",
                Action::Failed,
                Some("5.1.1"),
                Some("550 5.1.1 <no.such.user@example.net>: Recipient address rejected: User unknown in virtual mailbox table"),
            )],
            email_id: Some(uuid("9c8b7a6f-5e4d-4c3b-a2a1-0f9e8d7c6b5a")),
        },
        Vendor {
            what: "a qmail bounce lists each address with its reason",
            file: "qmail",
            read: (Format::Qmail, Kind::DeliveryStatus),
            message_id: "20261205074112.12345.qmail@mail.example.org",
            date: "2026-12-05T07:41:12Z",
            reporting_mta: Some("mail.example.org"),
            envelope_id: None,
            original_message_id: Some("2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a@news.example.com"),
            return_token: Some("2d3e4f5a-6b7c-4d8e-9f0a-1b2c3d4e5f6a"),
            feedback_type: None,
            recipients: vec![
                recipient(
                    "jane@example.org",
                    Action::Failed,
                    Some("5.1.1"),
                    Some("Sorry, no mailbox here by that name. (#5.1.1)"),
                ),
                recipient(
                    "bob@example.org",
                    Action::Failed,
                    Some("5.7.1"),
                    Some("192.0.2.55 does not like recipient. Remote host said: 550 5.7.1 <bob@example.org>... Relaying denied Giving up on 192.0.2.55."),
                ),
            ],
            email_id: None,
        },
        Vendor {
            what: "an Exim text bounce: every failed address is read",
            file: "exim-failed",
            read: (Format::Exim, Kind::DeliveryStatus),
            message_id: "E1tQ9xY-0004Ab-Cd@mx.example.com",
            date: "2026-12-05T11:02:03Z",
            reporting_mta: None,
            envelope_id: None,
            original_message_id: Some("5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d@news.example.com"),
            return_token: Some("5a6b7c8d-9e0f-4a1b-8c2d-3e4f5a6b7c8d"),
            feedback_type: None,
            recipients: vec![
                recipient(
                    "paul@example.com",
                    Action::Failed,
                    Some("5.1.1"),
                    Some("host mx2.example.com [203.0.113.7] SMTP error from remote mail server after RCPT TO:<paul@example.com>: 550 5.1.1 <paul@example.com>: Recipient address rejected: User unknown in local recipient table"),
                ),
                recipient("carol@example.com", Action::Failed, None, Some("Unrouteable address")),
            ],
            email_id: None,
        },
        Vendor {
            what: "an Exim delay warning is delayed, not failed",
            file: "exim-delayed",
            read: (Format::Exim, Kind::DeliveryStatus),
            message_id: "E1tQAAA-0005Zz-Ee@mx.example.com",
            date: "2026-12-06T11:02:03Z",
            reporting_mta: None,
            envelope_id: None,
            original_message_id: None,
            return_token: None,
            feedback_type: None,
            recipients: vec![recipient(
                "slow@example.com",
                Action::Delayed,
                Some("4.7.1"),
                Some("host mx.slow.example.com [203.0.113.9] Delay reason: SMTP error from remote mail server after RCPT TO:<slow@example.com>: 451 4.7.1 Greylisted, please try again later"),
            )],
            email_id: None,
        },
        Vendor {
            what: "a Postfix text bounce: the continued lines are read",
            file: "postfix-plain",
            read: (Format::Postfix, Kind::DeliveryStatus),
            message_id: "20261207090000.1A2B3C4D5E@mail.example.net",
            date: "2026-12-07T09:00:00Z",
            reporting_mta: Some("mail.example.net"),
            envelope_id: None,
            original_message_id: Some("7e8f9a0b-1c2d-4e3f-8a4b-5c6d7e8f9a0b@news.example.com"),
            return_token: None,
            feedback_type: None,
            recipients: vec![recipient(
                "lucy@example.net",
                Action::Failed,
                Some("5.2.2"),
                Some("host mx.example.net[198.51.100.3] said: 552 5.2.2 <lucy@example.net>: Mailbox full (in reply to RCPT TO command)"),
            )],
            email_id: None,
        },
        Vendor {
            what: "generic free text with a code is a bounce",
            file: "generic-5xx",
            read: (Format::FreeText, Kind::DeliveryStatus),
            message_id: "gw-20261208-164500-77@gw.example.biz",
            date: "2026-12-08T16:45:00+02:00",
            reporting_mta: None,
            envelope_id: None,
            original_message_id: Some("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d@news.example.com"),
            return_token: None,
            feedback_type: None,
            recipients: vec![recipient(
                "ops-team@example.biz",
                Action::Failed,
                Some("5.7.1"),
                Some("Recipient: ops-team@example.biz Reason: 550 5.7.1 Message rejected by content policy"),
            )],
            email_id: Some(uuid("1a2b3c4d-5e6f-4a7b-8c9d-0e1f2a3b4c5d")),
        },
        Vendor {
            what: "an SES bounce carries the envelope id",
            file: "ses-bounce",
            read: (Format::Rfc3464, Kind::DeliveryStatus),
            message_id: "0100018c4f2d3e5a-7b8c9d0e-1f2a-4b3c-8d4e-5f6a7b8c9d0e-000000@email.amazonses.com",
            date: "2026-12-09T11:59:58Z",
            reporting_mta: Some("a48-112.smtp-out.amazonses.com"),
            envelope_id: Some("8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a"),
            original_message_id: Some("8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a@news.example.com"),
            return_token: None,
            feedback_type: None,
            recipients: vec![recipient(
                "bounce@simulator.amazonses.com",
                Action::Failed,
                Some("5.1.1"),
                Some("550 5.1.1 user unknown"),
            )],
            email_id: Some(uuid("8d7c6b5a-4f3e-4d2c-9b1a-0f9e8d7c6b5a")),
        },
        Vendor {
            what: "an SES complaint is a complaint about its recipient",
            file: "ses-complaint",
            read: (Format::Arf, Kind::Complaint),
            message_id: "0100018c4f6e7a8b-1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f-000000@email.amazonses.com",
            date: "2026-12-09T13:09:58Z",
            reporting_mta: None,
            envelope_id: None,
            original_message_id: Some("3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f@news.example.com"),
            return_token: None,
            feedback_type: Some("abuse"),
            recipients: vec![recipient(
                "complaint@simulator.amazonses.com",
                Action::Complained,
                None,
                None
            )],
            email_id: Some(uuid("3c4d5e6f-7a8b-4c9d-8e0f-1a2b3c4d5e6f")),
        },
        Vendor {
            what: "a Yahoo complaint: Original-Rcpt-To and Received-Date are read",
            file: "yahoo-arf",
            read: (Format::Arf, Kind::Complaint),
            message_id: "1765348200.123456@arf.mail.yahoo.com",
            date: "2026-12-10T06:29:00Z",
            reporting_mta: None,
            envelope_id: None,
            original_message_id: Some("4b5c6d7e-8f9a-4b0c-9d1e-2f3a4b5c6d7e@news.example.com"),
            return_token: None,
            feedback_type: Some("abuse"),
            recipients: vec![recipient(
                "reader.one@yahoo.com",
                Action::Complained,
                None,
                None
            )],
            email_id: None,
        },
        Vendor {
            what: "an AOL complaint without Original-Rcpt-To uses the returned To",
            file: "aol-arf",
            read: (Format::Arf, Kind::Complaint),
            message_id: "201212110100.aol.scomp.77@aol.net",
            date: "2026-12-11T19:59:00-05:00",
            reporting_mta: None,
            envelope_id: None,
            original_message_id: Some("7d8e9f0a-1b2c-4d3e-8f4a-5b6c7d8e9f0a@news.example.com"),
            return_token: None,
            feedback_type: Some("abuse"),
            recipients: vec![recipient(
                "reader.two@aol.com",
                Action::Complained,
                None,
                None
            )],
            email_id: None,
        },
    ] {
        assert_vendor(vendor);
    }
}

#[test]
fn messages_that_are_not_reports_name_no_recipient() {
    let cases = [
        (
            "not-reports/out-of-office.eml",
            Format::AutoReply,
            "oof-20261204-1021@example.org",
            "2026-12-04T10:21:00Z",
        ),
        (
            "not-reports/reply.eml",
            Format::None,
            "CAF=reply123@mail.example.com",
            "2026-12-04T11:00:00Z",
        ),
        (
            "not-reports/newsletter.eml",
            Format::None,
            "nl-20261205-0600-abc@shop.example.net",
            "2026-12-05T06:00:00Z",
        ),
    ];
    for (path, format, id, date) in cases {
        let r = fixture(path);
        assert_eq!(
            r,
            Report {
                message_id: some(id),
                date: some(date),
                ..report(format, Kind::NotAReport)
            },
            "{path}"
        );
        assert_eq!(r.email_id(), None, "{path}");
    }
}

#[test]
fn dsn_reads_original_recipient_and_several_blocks() {
    let raw = b"From: MAILER-DAEMON@mx.example.com\r\nSubject: Delivery Status\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n\
--b\r\nContent-Type: text/plain\r\n\r\nSee below.\r\n\
--b\r\nContent-Type: message/delivery-status\r\n\r\n\
Reporting-MTA: dns; mx.example.com\r\nOriginal-Envelope-Id: 11111111-2222-4333-8444-555555555555\r\n\r\n\
Final-Recipient: rfc822; A@Example.com\r\nOriginal-Recipient: rfc822;a+x@example.com\r\nAction: delivered\r\nStatus: 2.0.0\r\n\r\n\
Final-Recipient: rfc822; b@example.com\r\nAction: delayed\r\nStatus: 4.4.1\r\nDiagnostic-Code: smtp; 421 4.4.1\r\n  connection timed out\r\n\r\n\
Final-Recipient: rfc822; c@example.com\r\nAction: relayed (to a non-DSN MTA)\r\nStatus: 2.0.0\r\n\r\n\
Final-Recipient: rfc822; d@example.com\r\nAction: expanded\r\nStatus: 2.0.0\r\n\r\n\
--b--\r\n";
    let r = parse(raw);
    assert_eq!(r.format, Format::Rfc3464);
    assert_eq!(r.reporting_mta.as_deref(), Some("mx.example.com"));
    assert_eq!(r.email_id(), uuid("11111111-2222-4333-8444-555555555555"));
    assert_eq!(
        r.recipients,
        vec![
            RecipientReport {
                original_recipient: some("a+x@example.com"),
                ..recipient("a@example.com", Action::Delivered, Some("2.0.0"), None)
            },
            recipient(
                "b@example.com",
                Action::Delayed,
                Some("4.4.1"),
                Some("421 4.4.1 connection timed out")
            ),
            recipient("c@example.com", Action::Relayed, Some("2.0.0"), None),
            recipient("d@example.com", Action::Expanded, Some("2.0.0"), None),
        ]
    );
    assert_eq!(r.problem, None);
}

#[test]
fn email_id_prefers_the_envelope_id_then_verp_then_message_id() {
    let mut r = Report::empty();
    r.original_message_id = some("33333333-3333-4333-8333-333333333333@x.example");
    assert_eq!(r.email_id(), uuid("33333333-3333-4333-8333-333333333333"));
    r.return_token = some("22222222-2222-4222-8222-222222222222");
    assert_eq!(r.email_id(), uuid("22222222-2222-4222-8222-222222222222"));
    r.envelope_id = some("not-a-uuid");
    assert_eq!(r.email_id(), uuid("22222222-2222-4222-8222-222222222222"));
    r.envelope_id = some("11111111-1111-4111-8111-111111111111");
    assert_eq!(r.email_id(), uuid("11111111-1111-4111-8111-111111111111"));
}

#[test]
fn report_key_is_stable_distinct_and_bounded() {
    let r = fixture("vendor/qmail.eml");
    let sha = "ab".repeat(32);
    let a = r.report_key(&sha, &r.recipients[0]);
    let b = r.report_key(&sha, &r.recipients[1]);
    assert_eq!(
        a,
        fixture("vendor/qmail.eml").report_key(&sha, &r.recipients[0])
    );
    assert_ne!(a, b);
    assert_eq!(a, format!("{sha}:failed:jane@example.org"));
    let long = recipient(
        &format!("{}@example.com", "x".repeat(240)),
        Action::Failed,
        None,
        None,
    );
    let key = r.report_key(&sha, &long);
    assert!(key.len() <= 200, "{}", key.len());
    assert_ne!(
        key,
        r.report_key(
            &sha,
            &recipient(
                &format!("{}@example.com", "y".repeat(240)),
                Action::Failed,
                None,
                None
            )
        )
    );
}

fn bounded(what: &str, raw: &[u8]) -> Report {
    let started = Instant::now();
    let r = parse(raw);
    let took = started.elapsed();
    assert!(took < Duration::from_secs(10), "{what}: {took:?}");
    r
}

/// The report says what was cut: its problem contains `said`.
fn assert_problem(r: &Report, said: &str) {
    assert!(
        r.problem.as_deref().unwrap().contains(said),
        "{:?}",
        r.problem
    );
}

#[test]
fn a_50_mb_message_is_read_up_to_the_cap() {
    let mut raw = b"From: MAILER-DAEMON@x.example\r\nSubject: failure notice\r\n\r\n".to_vec();
    raw.extend(std::iter::repeat_n(b'a', 50 * 1024 * 1024));
    let r = bounded("50 MB", &raw);
    assert_eq!(r.kind, Kind::NotAReport);
    assert_problem(&r, "only its first");
}

#[test]
fn nesting_10000_deep_is_cut() {
    let mut raw =
        b"From: a@x.example\r\nContent-Type: multipart/mixed; boundary=b0\r\n\r\n".to_vec();
    for i in 1..10_000 {
        raw.extend(
            format!(
                "--b{}\r\nContent-Type: multipart/mixed; boundary=b{i}\r\n\r\n",
                i - 1
            )
            .bytes(),
        );
    }
    let r = bounded("deep", &raw);
    assert_problem(&r, "MIME parts");
}

#[test]
fn ten_thousand_parts_are_cut() {
    let mut raw =
        b"From: a@x.example\r\nContent-Type: multipart/mixed; boundary=b\r\n\r\n".to_vec();
    for _ in 0..10_000 {
        raw.extend(b"--b\r\nContent-Type: text/plain\r\n\r\nx\r\n");
    }
    raw.extend(b"--b--\r\n");
    let r = bounded("wide", &raw);
    assert_problem(&r, "MIME parts");
}

#[test]
fn broken_encodings_and_truncated_mime_do_not_stop_the_reading() {
    let invalid = b"From: MAILER-DAEMON@x.example\r\nSubject: =?x-unknown?B?////?=\r\n\
Content-Type: multipart/report; report-type=delivery-status; boundary=q\r\n\r\n\
--q\r\nContent-Type: text/plain; charset=x-no-such-charset\r\nContent-Transfer-Encoding: base64\r\n\r\n\xff\xfe!!notbase64\r\n\
--q\r\nContent-Type: message/delivery-status\r\n\r\nReporting-MTA: dns; \xff\xfemx\r\n\r\n\
Final-Recipient: rfc822; u@example.com\r\nAction: failed\r\nStatus: 5.1.1\r\nDiagnostic-Code: smtp; 550 \x00\x1b[31m\xc3\x28 bad\r\n";
    let r = bounded("invalid", invalid);
    assert_eq!(r.format, Format::Rfc3464);
    assert_eq!(r.recipients.len(), 1);
    let diagnostic = r.recipients[0].diagnostic.as_deref().unwrap();
    assert!(!diagnostic.chars().any(char::is_control), "{diagnostic:?}");
    for cut in [10, 100, 200, 300, invalid.len() - 5] {
        let _ = bounded("truncated", &invalid[..cut]);
    }
    let r = bounded("empty", b"");
    assert_eq!(r.kind, Kind::NotAReport);
    let r = bounded("binary", &[0u8, 255, 13, 10, 13, 10, 1, 2, 3]);
    assert_eq!(r.kind, Kind::NotAReport);
}

/// One real report of tests/fixtures/bounces/real/: an RFC 3464 report with
/// one recipient, sent from the VERP address `bounces+<case>-<stamp>@...`.
struct Real {
    file: &'static str,
    message_id: &'static str,
    date: &'static str,
    reporting_mta: &'static str,
    envelope_id: Option<&'static str>,
    case: &'static str,
    address: &'static str,
    original_recipient: bool,
    action: Action,
    status: &'static str,
    diagnostic: &'static str,
}

const STAMP: &str = "20261205174922";

fn assert_real(real: &Real) {
    let address = format!("reader.{STAMP}@{}", real.address);
    assert_eq!(
        fixture(&format!("real/{}.eml", real.file)),
        Report {
            message_id: some(real.message_id),
            date: some(real.date),
            reporting_mta: some(real.reporting_mta),
            envelope_id: real.envelope_id.map(str::to_string),
            original_message_id: Some(format!("fixture-{}-{STAMP}@acme.example", real.case)),
            return_token: Some(format!("{}-{STAMP}", real.case)),
            recipients: vec![RecipientReport {
                original_recipient: real.original_recipient.then(|| address.clone()),
                ..recipient(
                    &address,
                    real.action,
                    Some(real.status),
                    Some(real.diagnostic)
                )
            }],
            ..report(Format::Rfc3464, Kind::DeliveryStatus)
        },
        "{}",
        real.file
    );
}

#[test]
fn real_postfix_reports_are_read_field_by_field() {
    let relay = "relay.mailsync.test";
    let date = "2026-12-05T17:49:22Z";
    for real in [
        Real {
            file: "postfix/delivered",
            message_id: "20261205174922.53BEB570109@relay.mailsync.test",
            date,
            reporting_mta: relay,
            envelope_id: Some("fixture-postfix-delivered-20261205174922"),
            case: "delivered",
            address: "deliver.test",
            original_recipient: true,
            action: Action::Delivered,
            status: "2.0.0",
            diagnostic: "delivery via virtual: delivered to maildir",
        },
        Real {
            file: "postfix/failed-5.1.1",
            message_id: "20261205174922.48CD4570109@relay.mailsync.test",
            date,
            reporting_mta: relay,
            envelope_id: Some("fixture-postfix-failed-5.1.1-20261205174922"),
            case: "failed-5.1.1",
            address: "nouser.test",
            original_recipient: true,
            action: Action::Failed,
            status: "5.1.1",
            diagnostic: "mailbox unavailable: nouser.test has no mailboxes",
        },
        Real {
            file: "postfix/delayed",
            message_id: "20261205174922.595B65700E8@relay.mailsync.test",
            date,
            reporting_mta: relay,
            envelope_id: Some("fixture-postfix-delayed-20261205174922"),
            case: "delayed",
            address: "later.test",
            original_recipient: true,
            action: Action::Delayed,
            status: "4.2.1",
            // Folded over two lines in the report.
            diagnostic: "mailbox temporarily unavailable: later.test defers every message",
        },
        Real {
            file: "postfix/failed-no-dsn",
            message_id: "20261205174922.6685E5700E9@relay.mailsync.test",
            date,
            reporting_mta: relay,
            envelope_id: None,
            case: "failed-no-dsn",
            address: "nouser.test",
            original_recipient: true,
            action: Action::Failed,
            status: "5.1.1",
            diagnostic: "mailbox unavailable: nouser.test has no mailboxes",
        },
    ] {
        assert_real(&real);
    }
}

#[test]
fn real_exim_reports_are_read_field_by_field() {
    let mx = "mx.exim.test";
    for real in [
        Real {
            file: "exim/delivered",
            message_id: "E1xZtsz-00084B-26@mx.exim.test",
            date: "2026-12-05T17:49:25Z",
            reporting_mta: mx,
            envelope_id: Some("fixture-exim-delivered-20261205174922"),
            case: "delivered",
            address: "deliver.test",
            original_recipient: true,
            action: Action::Delivered,
            status: "2.0.0",
            diagnostic: "relayed via non SMTP router",
        },
        Real {
            file: "exim/failed-unrouteable",
            message_id: "E1xZtsz-00084M-2e@mx.exim.test",
            date: "2026-12-05T17:49:25Z",
            reporting_mta: mx,
            envelope_id: Some("fixture-exim-failed-unrouteable-20261205174922"),
            case: "failed-unrouteable",
            address: "nouser.test",
            original_recipient: true,
            action: Action::Failed,
            status: "5.0.0",
            // No Diagnostic-Code: taken from Exim's text for a person.
            diagnostic: "Unrouteable address",
        },
        Real {
            file: "exim/failed-remote-5xx",
            message_id: "E1xZtsz-00084h-36@mx.exim.test",
            date: "2026-12-05T17:49:25Z",
            reporting_mta: mx,
            envelope_id: Some("fixture-exim-failed-remote-5xx-20261205174922"),
            case: "failed-remote-5xx",
            address: "refused.test",
            original_recipient: true,
            action: Action::Failed,
            status: "5.0.0",
            diagnostic: "500 5.3.0 Error: command failed",
        },
        Real {
            file: "exim/delayed",
            message_id: "E1xZtt1-00086T-10@mx.exim.test",
            // No Arrival-Date: the report's own Date.
            date: "2026-12-05T17:49:27Z",
            reporting_mta: mx,
            envelope_id: Some("fixture-exim-delayed-20261205174922"),
            case: "delayed",
            address: "later.test",
            original_recipient: true,
            action: Action::Delayed,
            status: "4.0.0",
            diagnostic:
                "Delay reason: mailbox temporarily unavailable: later.test defers every message",
        },
        Real {
            file: "exim/failed-no-dsn",
            message_id: "E1xZtt0-00084v-0W@mx.exim.test",
            date: "2026-12-05T17:49:26Z",
            reporting_mta: mx,
            envelope_id: None,
            case: "failed-no-dsn",
            address: "nouser.test",
            original_recipient: false,
            action: Action::Failed,
            status: "5.0.0",
            diagnostic: "Unrouteable address",
        },
    ] {
        assert_real(&real);
    }
}

/// The real reports' ids are not UUIDs (so no email is claimed); with
/// mailsync's UUIDs in the same places, each way of finding the email works.
#[test]
fn real_reports_give_the_email_id_from_envid_verp_or_message_id() {
    let read = |file: &str| {
        std::fs::read_to_string(format!(
            "{}/tests/fixtures/bounces/real/{file}.eml",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    let id = "0e9d8c7b-6a5f-4e4d-8c3b-2a1f0e9d8c7b";
    for file in ["postfix/failed-5.1.1", "exim/failed-remote-5xx"] {
        let raw = read(file);
        assert_eq!(parse(raw.as_bytes()).email_id(), None, "{file}");
        let mta = file.split('/').next().unwrap();
        let case = file.split('/').nth(1).unwrap();
        let envid = raw.replace(&format!("fixture-{mta}-{case}-{STAMP}"), id);
        assert_eq!(parse(envid.as_bytes()).email_id(), uuid(id), "{file} ENVID");
        let verp = raw.replace(
            &format!("bounces+{case}-{STAMP}@"),
            &format!("bounces+{id}@"),
        );
        assert_eq!(parse(verp.as_bytes()).email_id(), uuid(id), "{file} VERP");
        let message_id = raw.replace(&format!("fixture-{case}-{STAMP}@"), &format!("{id}@"));
        assert_eq!(
            parse(message_id.as_bytes()).email_id(),
            uuid(id),
            "{file} Message-ID"
        );
    }
}

mod fuzz {
    use proptest::prelude::*;

    use super::*;

    fn fixtures() -> Vec<Vec<u8>> {
        let root = format!("{}/tests/fixtures/bounces", env!("CARGO_MANIFEST_DIR"));
        let mut found = Vec::new();
        for dir in ["vendor", "not-reports", "real/postfix", "real/exim"] {
            let mut paths: Vec<_> = std::fs::read_dir(format!("{root}/{dir}"))
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "eml"))
                .collect();
            paths.sort();
            found.extend(paths.into_iter().map(|p| std::fs::read(p).unwrap()));
        }
        found
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(300))]
        /// Any fixture cut, overwritten and spliced anywhere is read to the
        /// end without the parser giving up on its structure.
        #[test]
        fn damaged_reports_are_read_without_panicking(
            which in 0usize..64,
            cut in 0.0f64..1.0,
            edits in proptest::collection::vec((0.0f64..1.0, any::<u8>()), 0..40),
            splice in proptest::collection::vec(
                prop::sample::select(vec![&b"\r\n--"[..], b"\n\n", b"Content-Type: multipart/mixed; boundary=", b"--_000_", b"=?utf-8?B?", b"\xff", b"Final-Recipient: rfc822; ", b"message/rfc822\n\n", b"Content-Transfer-Encoding: base64\n"]),
                0..8,
            ),
        ) {
            let all = fixtures();
            let mut raw = all[which % all.len()].clone();
            let len = raw.len();
            raw.truncate(((len as f64) * (0.2 + 0.8 * cut)) as usize);
            for (at, byte) in edits {
                if !raw.is_empty() {
                    let i = ((raw.len() - 1) as f64 * at) as usize;
                    raw[i] = byte;
                }
            }
            for (n, piece) in splice.iter().enumerate() {
                let i = (raw.len() * (n + 1)) / (splice.len() + 1);
                raw.splice(i..i, piece.iter().copied());
            }
            let report = parse(&raw);
            prop_assert_ne!(report.problem.as_deref(), Some("the MIME structure could not be read"));
            for r in &report.recipients {
                prop_assert!(r.diagnostic.as_deref().is_none_or(|d| !d.chars().any(char::is_control)));
                prop_assert_eq!(r.address.to_lowercase(), r.address.clone());
            }
        }
    }
}
