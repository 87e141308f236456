//! `mailsync campaigns send`: queue a campaign, one pending email per
//! contact (optionally of one organisation), page by page, after a
//! confirmation that shows how many recipients. Each page is one call well
//! inside hosted Supabase's 8-second API limit; an interrupted or retried
//! send continues where it stopped and never queues a contact twice (the
//! cursor lives on the server). The campaign becomes `sending` with the last
//! page.
//! Server side: `count_send_recipients(organization)` (the prompt's count),
//! `queue_campaign_page(campaign, organization, page_size)` (which queues
//! through `queue_send_recipients`, as `send_campaign` does), both selecting
//! through `send_recipients` and the organisation-name rule
//! (`mailsync_org_key`), and table `campaign_sends`, in
//! `sql/MASTER-DATABASE.sql`.
//! Tests: `tests/it/campaigns.rs`, `tests/it/hosted_client.rs`; benchmark:
//! `scripts/bench-send`.

use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget};
use serde::{Deserialize, Serialize};
use serde_json::json;

use crate::domain::{Campaign, CampaignStatus};
use crate::error::{Error, ErrorKind, Result};
use crate::i18n::FluentValue;
use crate::output::Output;
use crate::settings::Config;
use crate::supabase::rest::RestClient;
use crate::t;

#[derive(Debug, Clone)]
pub struct Options {
    /// The campaign: its id, or its name when unique.
    pub campaign: String,
    /// Only the contacts of this organisation.
    pub organization: Option<String>,
    /// Do not ask for confirmation.
    pub yes: bool,
}

/// Contacts scanned by the first call; later calls aim at [`TARGET_CALL`].
const FIRST_PAGE: i64 = 5_000;
const MIN_PAGE: i64 = 500;
/// The server's own maximum.
const MAX_PAGE: i64 = 20_000;
/// How long one call should take: far inside the 8 s limit and under a
/// second with room for a busy server, long enough that round trips do not
/// dominate (a page's cost is linear in its size: the server's plan is
/// pinned, see `send_recipients`).
const TARGET_CALL: Duration = Duration::from_millis(400);
/// How many times one page is tried after a statement timeout or a lost
/// answer before giving up (the send can always be resumed).
const PAGE_ATTEMPTS: u32 = 6;

/// What one `queue_campaign_page` call answers.
#[derive(Debug, Clone, Deserialize)]
struct Page {
    status: CampaignStatus,
    organization: Option<String>,
    /// Emails queued by the whole send so far.
    queued: i64,
    /// Emails queued by this call.
    queued_now: i64,
    contacts_scanned: i64,
    done: bool,
    /// Contacts left out as suppressed, by the whole send so far.
    #[serde(default)]
    suppressed: i64,
}

/// What `--json` prints.
#[derive(Debug, Serialize, Deserialize)]
pub struct Queued {
    pub campaign_id: String,
    pub name: String,
    pub status: CampaignStatus,
    /// Emails queued for this campaign, by this run and any earlier one.
    pub queued: i64,
    /// Emails this run queued.
    pub queued_now: i64,
    /// Whether an earlier run had already queued part or all of it.
    pub resumed: bool,
    pub organization: Option<String>,
    /// Server calls this run made, and the slowest one.
    pub calls: u32,
    pub slowest_call_ms: u64,
    pub elapsed_ms: u64,
    /// Contacts left out because their address is suppressed (unsubscribed
    /// or bounced; see `suppressions`).
    #[serde(default)]
    pub suppressed: i64,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let client = crate::supabase::user::user_client(config, out).await?;
    let target = crate::supabase::lookup::campaign(&client, &options.campaign).await?;
    let name = &target.name;
    let earlier = progress_of(&client, &target.id).await?;
    // A campaign that is already `sending`/`sent` is not asked about: the
    // server answers what an earlier run queued, or refuses.
    if target.status.can_send() && !options.yes {
        let no_terminal = t!("send-no-terminal", name = format!("{name:?}"));
        if !crate::output::can_ask() {
            return Err(Error::usage(no_terminal).with_hint(t!("send-no-terminal-hint")));
        }
        let count = count_recipients(&client, options.organization.as_deref()).await?;
        let recipients = count.recipients;
        let mut organization = count
            .organization
            .map(|o| t!("send-of-organization", organization = format!("{o:?}")))
            .unwrap_or_default();
        if count.suppressed > 0 {
            organization += &t!("send-left-out", count = count.suppressed);
        }
        let question = match &earlier {
            Some(p) if p.queued_at.is_none() => t!(
                "send-confirm-continue",
                name = format!("{name:?}"),
                queued = p.queued,
                recipients = recipients,
                organization = organization.as_str()
            ),
            _ => t!(
                "send-confirm",
                name = format!("{name:?}"),
                recipients = recipients,
                organization = organization.as_str()
            ),
        };
        if !out.confirm(&question, &no_terminal)? {
            out.note(t!("send-cancelled"));
            return Ok(());
        }
    }

    let started = Instant::now();
    // The bar's length (the contacts to scan) costs a count: only for a bar.
    let bar = if target.status.can_send() && shows_progress(out) {
        let total = count_recipients(&client, options.organization.as_deref())
            .await?
            .contacts;
        progress_bar(total, earlier.as_ref().map_or(0, |p| p.scanned))
    } else {
        ProgressBar::hidden()
    };
    let mut size = FIRST_PAGE;
    let mut calls = 0u32;
    let mut slowest = Duration::ZERO;
    let mut queued_now = 0i64;
    // What this run queued is the total now less the total before it: a page
    // whose answer was lost and was asked again answers `queued_now: 0`,
    // though this run's first attempt queued it.
    let queued_before = earlier.as_ref().map_or(0, |p| p.queued);
    let page = loop {
        let (page, took, tries) =
            queue_page(&client, &target, options.organization.as_deref(), &mut size)
                .await
                .map_err(|e| interrupted(e, name, queued_now))?;
        calls += tries;
        slowest = slowest.max(took);
        queued_now = (queued_now + page.queued_now).max(page.queued - queued_before);
        bar.set_position(page.contacts_scanned as u64);
        bar.set_message(t!("send-progress-queued", count = page.queued));
        // The -v trace is English, like the rest of the trace.
        out.debug(format!(
            "send: call {calls}: page of {size} contacts, {} queued in {} ms ({} contacts scanned so far)",
            page.queued_now,
            took.as_millis(),
            page.contacts_scanned
        ));
        if page.done {
            break page;
        }
        size = next_page_size(size, took);
    };
    bar.finish_and_clear();
    out.debug(format!(
        "send: {calls} calls in {} ms, the slowest {} ms",
        started.elapsed().as_millis(),
        slowest.as_millis()
    ));

    if page.queued == 0 {
        return Err(Error::refused(t!(
            "send-error-no-recipients",
            name = format!("{name:?}"),
            organization = page
                .organization
                .as_deref()
                .or(options.organization.as_deref())
                .map(|o| t!("send-in-organization", organization = format!("{o:?}")))
                .unwrap_or_default()
        ))
        .with_hint(t!("send-hint-import-first")));
    }
    let result = Queued {
        campaign_id: target.id.clone(),
        name: name.clone(),
        status: page.status,
        queued: page.queued,
        queued_now,
        resumed: earlier.is_some(),
        organization: page.organization.clone(),
        calls,
        slowest_call_ms: slowest.as_millis() as u64,
        elapsed_ms: started.elapsed().as_millis() as u64,
        suppressed: page.suppressed,
    };
    if out.json {
        return out.json(&result);
    }
    let organization = result
        .organization
        .as_deref()
        .map(|o| t!("send-for-organization", organization = format!("{o:?}")))
        .unwrap_or_default();
    // All queued by this run, all by an earlier one, or some by each.
    let message = if queued_now == result.queued {
        "send-queued"
    } else if queued_now == 0 {
        "send-already-queued"
    } else {
        "send-queued-resumed"
    };
    out.print(crate::i18n::current().text(
        message,
        &[
            ("name", FluentValue::from(format!("{name:?}"))),
            ("status", FluentValue::from(result.status.to_string())),
            ("count", FluentValue::from(result.queued)),
            ("organization", FluentValue::from(organization)),
            ("now", FluentValue::from(queued_now)),
        ],
    ));
    if result.suppressed > 0 {
        out.print(t!("send-suppressed", count = result.suppressed));
    }
    out.print(t!("send-next"));
    Ok(())
}

/// The size of the next page, aimed at [`TARGET_CALL`] from what the last
/// page of `size` contacts took: at most twice or half the last size.
fn next_page_size(size: i64, took: Duration) -> i64 {
    let per_contact = took.as_secs_f64() / size as f64;
    if per_contact <= 0.0 {
        return (size * 2).clamp(MIN_PAGE, MAX_PAGE);
    }
    let ideal = (TARGET_CALL.as_secs_f64() / per_contact) as i64;
    ideal.clamp(size / 2, size * 2).clamp(MIN_PAGE, MAX_PAGE)
}

/// One page, retried until it is answered: the call is idempotent (the
/// server's cursor moves only with a committed page), so a lost answer or a
/// statement timeout is simply tried again, a timeout with a smaller page.
/// Returns the page, how long the answered call took, and how many calls.
async fn queue_page(
    client: &RestClient,
    target: &Campaign,
    organization: Option<&str>,
    size: &mut i64,
) -> Result<(Page, Duration, u32)> {
    let mut tries = 0;
    loop {
        tries += 1;
        let args = json!({"campaign": target.id, "organization": organization, "page_size": *size});
        let started = Instant::now();
        let outcome = client
            .execute_idempotent(
                client.rpc("queue_campaign_page", &args),
                None,
                &t!(
                    "doing-queueing-campaign-named",
                    name = format!("{:?}", target.name)
                ),
            )
            .await
            .and_then(|r| r.json::<Page>(&t!("doing-queueing-campaign")));
        match outcome {
            Ok(page) => return Ok((page, started.elapsed(), tries)),
            // Cut by the statement timeout: nothing of that page was kept.
            Err(e) if e.code() == Some("57014") && tries < PAGE_ATTEMPTS && *size > MIN_PAGE => {
                *size = (*size / 4).max(MIN_PAGE);
            }
            Err(e) if e.kind() == ErrorKind::Unreachable && tries < PAGE_ATTEMPTS => {
                tokio::time::sleep(Duration::from_secs(u64::from(tries))).await;
            }
            Err(e) => return Err(e),
        }
    }
}

/// An error during queueing, saying what this run queued and how to go on.
fn interrupted(e: Error, name: &str, queued_now: i64) -> Error {
    if queued_now == 0 {
        return e;
    }
    let hint = e.hint().map(str::to_string);
    let e = e.context(t!(
        "send-error-queued-before",
        count = queued_now,
        name = format!("{name:?}")
    ));
    e.with_hint(hint.unwrap_or_else(|| t!("send-hint-continue")))
}

/// How far an earlier send of this campaign got.
#[derive(Debug, Deserialize)]
struct Earlier {
    queued: i64,
    #[serde(rename = "contacts_scanned")]
    scanned: u64,
    queued_at: Option<String>,
}

async fn progress_of(client: &RestClient, campaign: &str) -> Result<Option<Earlier>> {
    let rows: Vec<Earlier> = client
        .fetch(
            client
                .from("campaign_sends")
                .select("queued,contacts_scanned,queued_at")
                .eq("campaign_id", campaign),
            &t!("doing-reading-send"),
        )
        .await?;
    Ok(rows.into_iter().next())
}

/// Whether a progress bar can be drawn: on a terminal, for a person.
fn shows_progress(out: &Output) -> bool {
    !out.json && !out.quiet && crate::output::can_ask()
}

/// A bar over the contacts scanned, for large lists only.
fn progress_bar(total: u64, done: u64) -> ProgressBar {
    if total < 20_000 {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
    bar.set_style(
        crate::output::progress_style(&format!(
            "{} [{{bar:30}}] {{percent:>3}}% · {} · {{msg}} · {}",
            t!("send-progress"),
            t!("send-progress-contacts", total = "{total}"),
            t!("progress-eta", eta = "{eta}")
        ))
        .progress_chars("=> "),
    );
    bar.set_position(done);
    bar
}

/// What `count_send_recipients` answers: what a send would queue, by the
/// same selection and organisation-name rule as `queue_campaign_page`.
#[derive(Debug, Deserialize)]
struct Recipients {
    /// The organisation, spelled as stored.
    organization: Option<String>,
    /// Emails a send would queue.
    recipients: u64,
    /// Contacts it would leave out as unsubscribed or bounced.
    suppressed: u64,
    /// Contacts it scans (the progress bar's length).
    contacts: u64,
}

/// The recipients a send would queue, counted by the server (one call,
/// through its indexes; an unknown organisation is refused there).
async fn count_recipients(client: &RestClient, organization: Option<&str>) -> Result<Recipients> {
    let what = &t!("doing-counting-recipients");
    client
        .execute_idempotent(
            client.rpc(
                "count_send_recipients",
                &json!({ "organization": organization }),
            ),
            None,
            what,
        )
        .await?
        .json(what)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_page_aims_at_the_target_call_within_half_and_twice_the_last() {
        let ms = Duration::from_millis;
        // 5 000 contacts in 200 ms: 40 µs each, 10 000 in 400 ms.
        assert_eq!(next_page_size(5_000, ms(200)), 10_000);
        // Fast calls double the page, up to the server's maximum.
        assert_eq!(next_page_size(5_000, ms(10)), 10_000);
        assert_eq!(next_page_size(15_000, ms(10)), MAX_PAGE);
        // A slow call halves it at most, never under the minimum.
        assert_eq!(next_page_size(10_000, ms(800)), 5_000);
        assert_eq!(next_page_size(10_000, ms(3_000)), 5_000);
        assert_eq!(next_page_size(600, ms(3_000)), MIN_PAGE);
        // A call that took less than the clock can tell.
        assert_eq!(next_page_size(5_000, Duration::ZERO), 10_000);
    }
}
