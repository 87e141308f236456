//! `campaigns watch` in Realtime mode within hosted Realtime's quota (issue
//! 18, point 4): the real binary watches through the in-test Realtime
//! server (tests/it/common/realtime_server.rs: changes read from the stack's
//! write-ahead log, RLS per subscriber, the Free plan's 100 messages per
//! second, after which the channel is closed) while a 100 000-email
//! campaign is delivered at 1 000 emails a second by updating `emails_sent`
//! in the stack's database. The watch must hear at most 2 messages a second
//! per campaign, never be closed for quota, and never show the campaign more
//! than 3 s behind the database.
//!
//! Full size by default (100 000 emails, about 100 s); `MAILSYNC_QUOTA_EMAILS`
//! runs a smaller send at the same rate.

use crate::common;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::realtime_server::{RealtimeConfig, RealtimeServer};
use serde_json::Value;
use tokio::io::AsyncBufReadExt;

const RATE: usize = 1_000;
/// Emails per statement: ten statements a second.
const BATCH: usize = 100;
const MAX_MESSAGES_PER_SECOND_PER_CAMPAIGN: usize = 2;
const MAX_LAG: Duration = Duration::from_secs(3);

/// Settled emails of the campaign in one `--json` snapshot line.
fn settled(line: &Value, campaign: &str) -> Option<i64> {
    ["sending", "sent"].iter().find_map(|list| {
        line[*list].as_array()?.iter().find_map(|c| {
            (c["campaign_id"] == campaign).then(|| {
                c["total_emails"].as_i64().unwrap_or(0)
                    - c["pending_count"].as_i64().unwrap_or(0)
                    - c["sending_count"].as_i64().unwrap_or(0)
            })
        })
    })
}

/// Waits until `check` holds, at most `limit`.
async fn until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let started = Instant::now();
    while !check() {
        assert!(started.elapsed() < limit, "{what}: not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watch_during_a_100_000_email_send_at_1_000_a_second_stays_within_the_quota_and_3_s_of_the_database(
) {
    let emails: usize = std::env::var("MAILSYNC_QUOTA_EMAILS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let admin = common::admin().await;

    // The send: a campaign with every email queued (pending).
    let campaign = common::insert_campaign(&user, "Quota", "sending").await;
    admin
        .execute(
            "insert into public.emails_sent (user_id, campaign_id, recipient_email)
             select $1, $2, 'r' || g || '@example.test' from generate_series(1, $3::int) g",
            &[&user.id, &campaign, &(emails as i32)],
        )
        .await
        .unwrap();
    let ids: Vec<uuid::Uuid> = common::column_in(
        &admin,
        "select id from public.emails_sent where campaign_id = $1 order by id",
        &[&campaign],
    )
    .await;
    assert_eq!(ids.len(), emails);

    // Realtime as hosted on the Free plan: 100 messages a second.
    let server = RealtimeServer::start(RealtimeConfig::for_stack(&stack)).await;
    let dir = tempfile::tempdir().unwrap();
    let mut child = tokio::process::Command::from(common::command_for(
        &server.url(),
        &stack.anon_key,
        dir.path(),
    ))
    .args(["--json", "-v", "campaigns", "watch", "--mode", "realtime"])
    .env("MAILSYNC_ACCESS_TOKEN", &user.token)
    .stdout(std::process::Stdio::piped())
    .stderr(std::process::Stdio::piped())
    .kill_on_drop(true)
    .spawn()
    .unwrap();

    // What the watch shows, and when.
    let shown: Arc<Mutex<Vec<(Instant, i64)>>> = Arc::default();
    let key = campaign.to_string();
    let reader = {
        let shown = shown.clone();
        let mut lines = tokio::io::BufReader::new(child.stdout.take().unwrap()).lines();
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                let value: Value = serde_json::from_str(&line).unwrap();
                if let Some(n) = settled(&value, &key) {
                    shown.lock().unwrap().push((Instant::now(), n));
                }
            }
        })
    };
    let stderr = {
        let mut lines = tokio::io::BufReader::new(child.stderr.take().unwrap()).lines();
        tokio::spawn(async move {
            let mut all = String::new();
            while let Ok(Some(line)) = lines.next_line().await {
                all.push_str(&line);
                all.push('\n');
            }
            all
        })
    };
    until("the watch is subscribed", Duration::from_secs(15), || {
        server.subscribed_channels() == 1
    })
    .await;
    until(
        "the watch shows the queued campaign",
        Duration::from_secs(15),
        || shown.lock().unwrap().iter().any(|(_, n)| *n == 0),
    )
    .await;

    // Delivery at RATE emails a second: one statement of BATCH every
    // BATCH/RATE seconds, on a fixed schedule. Each statement is timed from
    // before it is sent (the latest its changes can have committed is when
    // it returns; timing from the start can only overstate the lag).
    let started = Instant::now();
    let step = Duration::from_secs_f64(BATCH as f64 / RATE as f64);
    let mut committed: Vec<(Instant, i64)> = Vec::new();
    for (k, chunk) in ids.chunks(BATCH).enumerate() {
        tokio::time::sleep_until((started + step * k as u32).into()).await;
        let at = Instant::now();
        admin
            .execute(
                "update public.emails_sent set status = 'delivered' where id = any($1)",
                &[&chunk.to_vec()],
            )
            .await
            .unwrap();
        committed.push((at, (k * BATCH + chunk.len()) as i64));
    }
    let delivery = started.elapsed();
    let achieved = emails as f64 / delivery.as_secs_f64();
    assert!(
        achieved > RATE as f64 * 0.9,
        "the database could not take {RATE} emails/s (got {achieved:.0}/s): the test did not load the watch as intended"
    );

    until(
        "the watch shows the last email",
        MAX_LAG + Duration::from_secs(10),
        || {
            shown
                .lock()
                .unwrap()
                .iter()
                .any(|(_, n)| *n == emails as i64)
        },
    )
    .await;
    let _ = child.start_kill();
    let _ = child.wait().await;
    reader.await.unwrap();
    let stderr = stderr.await.unwrap();

    // The lag: for each statement, from before it was sent until the watch
    // first showed at least its count.
    let shown = shown.lock().unwrap().clone();
    let mut lags: Vec<Duration> = committed
        .iter()
        .map(|(at, n)| {
            let seen = shown
                .iter()
                .find(|(when, count)| when >= at && count >= n)
                .map(|(when, _)| *when)
                .expect("every count is shown");
            seen - *at
        })
        .collect();
    lags.sort();
    let worst_lag = *lags.last().unwrap();
    let median_lag = lags[lags.len() / 2];

    // The messages the watch's channel was sent, per campaign.
    let messages: Vec<Duration> = server
        .deliveries()
        .iter()
        .filter(|d| {
            d.event == "postgres_changes"
                && d.payload["data"]["record"]["campaign_id"] == campaign.to_string()
        })
        .map(|d| d.at)
        .collect();
    let mut peak = 0;
    let mut first = 0;
    for last in 0..messages.len() {
        while messages[last] - messages[first] >= Duration::from_secs(1) {
            first += 1;
        }
        peak = peak.max(last - first + 1);
    }
    let mean_rate = messages.len() as f64 / delivery.as_secs_f64();
    println!(
        "watch during a send: {emails} emails at {achieved:.0}/s over {:.1} s; \
         Realtime messages for the campaign: {} ({mean_rate:.2}/s mean, peak {peak} in any 1 s; \
         project peak {}/s); screen lag: median {:.2} s, worst {:.2} s; refreshes shown: {}; quota closes: {}",
        delivery.as_secs_f64(),
        messages.len(),
        server.peak_messages_per_second(),
        median_lag.as_secs_f64(),
        worst_lag.as_secs_f64(),
        shown.len(),
        server.quota_closes(),
    );

    assert_eq!(server.quota_closes(), 0, "closed for quota: {stderr}");
    assert!(
        !stderr.contains("Too many messages"),
        "the watch was told about the quota: {stderr}"
    );
    assert_eq!(server.joins(), (1, 0), "one join, never refused: {stderr}");
    assert!(
        peak <= MAX_MESSAGES_PER_SECOND_PER_CAMPAIGN,
        "{peak} messages within one second for one campaign"
    );
    assert!(
        messages.len() as f64 >= delivery.as_secs_f64() * 0.5,
        "the campaign's changes reached the watch ({} messages)",
        messages.len()
    );
    assert!(
        worst_lag <= MAX_LAG,
        "the screen was {worst_lag:?} behind the database"
    );
}
