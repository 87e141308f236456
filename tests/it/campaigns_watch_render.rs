//! The watch screen for a fixed set of rows, compared with the files in
//! `tests/snapshots/` (a difference fails; after an intended change,
//! `scripts/update-snapshots` rewrites them, then review the diff).

use crate::common;

use mailsync::commands::campaigns::watch::data::Snapshot;
use mailsync::commands::campaigns::watch::render::{screen, screen_in, Rates};
use mailsync::i18n::Lang;
use serde_json::json;

fn campaign(
    name: &str,
    status: &str,
    counts: [u64; 6],
    completed: Option<&str>,
) -> serde_json::Value {
    let [pending, sending, sent, delivered, failed, bounced] = counts;
    let total = counts.iter().sum::<u64>();
    let rate = |n: u64| {
        if total == 0 {
            0.0
        } else {
            (n as f64 * 10000.0 / total as f64).round() / 100.0
        }
    };
    json!({
        "campaign_id": format!("id-{name}"),
        "campaign_name": name,
        "subject": "Sujet",
        "campaign_status": status,
        "user_id": "u",
        "created_at": "2026-11-20T09:00:00+00:00",
        "started_at": "2026-11-25T08:00:00+00:00",
        "completed_at": completed,
        "total_emails": total,
        "pending_count": pending,
        "sending_count": sending,
        "sent_count": sent,
        "delivered_count": delivered,
        "failed_count": failed,
        "bounced_count": bounced,
        "success_rate": rate(sent + delivered),
        "progress": rate(total - pending - sending),
    })
}

/// A snapshot as the `--json` of `campaigns watch` prints it.
fn snapshot(value: serde_json::Value) -> Snapshot {
    serde_json::from_value(value).expect("a snapshot in the watch --json shape")
}

fn dashboard() -> serde_json::Value {
    json!({"user_id": "u", "total_contacts": 12480, "total_organizations": 312,
           "active_campaigns": 2, "emails_sent_today": 5321})
}

fn busy() -> (Snapshot, Rates) {
    let snapshot = snapshot(json!({
        "dashboard": dashboard(),
        "sending": [
            campaign(
                "Newsletter novembre",
                "sending",
                [4000, 120, 2100, 5980, 70, 30],
                None,
            ),
            campaign(
                "Relance clients inactifs avec un nom très long pour voir",
                "sending",
                [10, 0, 0, 0, 0, 0],
                None,
            ),
        ],
        "sent": [campaign(
            "Rentrée 2026",
            "sent",
            [0, 0, 40, 1150, 8, 2],
            Some("2026-11-24T17:42:10.5+00:00"),
        )],
    }));
    let mut rates = Rates::new();
    rates.insert("id-Newsletter novembre".into(), 42.5);
    rates.insert(
        "id-Relance clients inactifs avec un nom très long pour voir".into(),
        0.0,
    );
    (snapshot, rates)
}

fn check(name: &str, actual: &str) {
    common::assert_snapshot(name, actual);
}

#[test]
fn a_busy_screen_at_100_columns() {
    let (snapshot, rates) = busy();
    check(
        "watch_busy_100",
        &screen(&snapshot, &rates, 100, "polling every 2.0 s"),
    );
}

#[test]
fn a_busy_screen_on_a_narrow_terminal() {
    let (snapshot, rates) = busy();
    let text = screen(&snapshot, &rates, 40, "polling every 2.0 s");
    assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
    check("watch_busy_40", &text);
}

#[test]
fn no_campaigns_at_all() {
    let snapshot = snapshot(json!({
        "dashboard": {"user_id": "u", "total_contacts": 0, "total_organizations": 0,
                      "active_campaigns": 0, "emails_sent_today": 0},
        "sending": [],
        "sent": [],
    }));
    check("watch_empty", &screen(&snapshot, &Rates::new(), 80, ""));
}

#[test]
fn a_busy_screen_in_english_uses_english_headings() {
    let (snapshot, rates) = busy();
    let text = screen_in(Lang::En, &snapshot, &rates, 100, "");
    assert!(text.contains("Sending in progress (2)"), "{text}");
    assert!(text.contains("Completed campaigns (1)"), "{text}");
    assert!(!text.contains("Envoi en progression"), "{text}");
    // "sent" counts what left the sender: sent + delivered + bounced.
    assert!(text.contains("8,110 sent of 12,300"), "{text}");
    assert_eq!(text, screen(&snapshot, &rates, 100, ""));
}

#[test]
fn a_busy_screen_in_french_at_100_columns() {
    let (snapshot, rates) = busy();
    let text = screen_in(Lang::Fr, &snapshot, &rates, 100, "");
    assert!(text.contains("Envoi en progression (2)"), "{text}");
    assert!(text.contains("Campagne terminée (1)"), "{text}");
    assert!(
        text.contains("8\u{202f}110 envoyés sur 12\u{202f}300"),
        "{text}"
    );
    check("watch_busy_100_fr", &text);
}

#[test]
fn a_busy_screen_in_french_on_a_narrow_terminal() {
    let (snapshot, rates) = busy();
    let text = screen_in(Lang::Fr, &snapshot, &rates, 40, "");
    assert!(text.lines().all(|l| l.chars().count() <= 40), "{text}");
    check("watch_busy_40_fr", &text);
}

#[test]
fn no_campaigns_at_all_in_french() {
    let snapshot = snapshot(json!({
        "dashboard": {"user_id": "u", "total_contacts": 1, "total_organizations": 0,
                      "active_campaigns": 0, "emails_sent_today": 0},
        "sending": [],
        "sent": [],
    }));
    let text = screen_in(Lang::Fr, &snapshot, &Rates::new(), 100, "");
    assert_eq!(
        text.lines().next().unwrap(),
        "1 contact · 0 organisation · 0 campagne active · 0 e-mail envoyé aujourd’hui"
    );
    assert!(text.contains("Aucune campagne en cours d’envoi."), "{text}");
}

/// Campaign names are the users' data: a name that would set the clipboard
/// (OSC 52), clear the screen, reverse the text or break the line is shown
/// escaped, as everywhere else, and so is the status line.
#[test]
fn control_characters_in_names_and_status_are_shown_escaped() {
    let names = [
        "Promo\u{1b}]52;c;SGVsbG8=\u{7}",
        "\u{1b}[2J\u{1b}[HEffacé",
        "abc\u{202e}fed",
        "two\nlines\r\tand\u{9b}31m",
    ];
    let snapshot = snapshot(json!({
        "dashboard": dashboard(),
        "sending": [
            campaign(names[0], "sending", [10, 0, 5, 0, 0, 0], None),
            campaign(names[1], "sending", [10, 0, 5, 0, 0, 0], None),
        ],
        "sent": [
            campaign(names[2], "sent", [0, 0, 5, 0, 0, 0], Some("2026-11-24T17:42:10.5+00:00")),
            campaign(names[3], "sent", [0, 0, 5, 0, 0, 0], Some("2026-11-24T17:42:10.5+00:00")),
        ],
    }));
    let status = "polling (server said \u{1b}[31mno\u{1b}[0m)";
    for width in [200, 40] {
        let text = screen(&snapshot, &Rates::new(), width, status);
        assert!(
            !text
                .chars()
                .any(|c| c != '\n' && (c.is_control() || ('\u{202a}'..='\u{202e}').contains(&c))),
            "{text:?}"
        );
        if width == 200 {
            for shown in [
                "  Promo\\u{1b}]52;c;SGVsbG8=\\u{7}\n",
                "  \\u{1b}[2J\\u{1b}[HEffacé\n",
                "  abc\\u{202e}fed\n",
                "  two\\nlines\\r\\tand\\u{9b}31m\n",
                "polling (server said \\u{1b}[31mno\\u{1b}[0m)\n",
            ] {
                assert!(text.contains(shown), "{shown:?} in\n{text}");
            }
        }
    }
}
