//! What a run tells: the counters its parts keep as it goes ([`Tally`]),
//! the progress bar, and the summary at the end (`--json`: the contract in
//! the README).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::Result;
use crate::output::Output;
use crate::t;

/// One email's unknown outcome, as `unknown_emails` lists it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnknownEmail {
    pub recipient_email: String,
    pub message_id: Option<String>,
    pub claimed_at: Option<String>,
    pub lease_owner: Option<String>,
}

/// The `--json` summary (the contract is in the README).
#[derive(Debug, Default, Serialize)]
pub struct DeliverySummary {
    pub smtp: String,
    pub worker: String,
    pub campaign_id: Option<Uuid>,
    pub dry_run: bool,
    pub claimed: u64,
    pub sent: u64,
    pub bounced: u64,
    pub failed: u64,
    pub suppressed: u64,
    pub retries: u64,
    pub released: u64,
    pub not_recorded: u64,
    pub pending: Option<u64>,
    pub unknown: u64,
    pub unknown_emails: Vec<UnknownEmail>,
    pub resend_unknown: bool,
    pub interrupted: bool,
    pub elapsed_secs: f64,
    pub emails_per_sec: f64,
    pub db_secs: f64,
}

impl DeliverySummary {
    /// The counts of a run that took `elapsed`, from its tally.
    pub(super) fn count(&mut self, tally: &Tally, elapsed: Duration, interrupted: bool) {
        let get = |n: &AtomicU64| n.load(Ordering::Relaxed);
        self.claimed = get(&tally.claimed);
        self.sent = get(&tally.sent);
        self.bounced = get(&tally.bounced);
        self.failed = get(&tally.failed);
        self.suppressed = get(&tally.suppressed);
        self.retries = get(&tally.retries);
        self.released = get(&tally.released);
        self.not_recorded = get(&tally.not_recorded);
        self.interrupted = interrupted;
        let elapsed = elapsed.as_secs_f64();
        let attempted = self.sent + self.bounced + self.failed;
        self.elapsed_secs = round3(elapsed);
        self.emails_per_sec = if elapsed > 0.0 {
            round3(attempted as f64 / elapsed)
        } else {
            0.0
        };
        self.db_secs = round3(tally.db_busy().as_secs_f64());
        self.pending = None;
    }
}

/// Counters shared by the senders, the recorder and the progress bar.
#[derive(Default)]
pub(super) struct Tally {
    pub claimed: AtomicU64,
    pub sent: AtomicU64,
    pub bounced: AtomicU64,
    pub failed: AtomicU64,
    pub suppressed: AtomicU64,
    pub retries: AtomicU64,
    pub released: AtomicU64,
    pub not_recorded: AtomicU64,
    pub temporary_streak: AtomicU64,
    db: Mutex<DbClock>,
    /// When the progress bar's counts were last rebuilt.
    counts_shown: Mutex<Option<Instant>>,
}

/// Wall-clock time during which at least one database call was in flight
/// (calls overlap: claims, outcomes and leases run side by side).
#[derive(Default)]
struct DbClock {
    in_flight: u32,
    since: Option<Instant>,
    busy: Duration,
}

impl Tally {
    pub(super) fn db_enter(&self) {
        let mut c = self.db.lock().unwrap_or_else(|p| p.into_inner());
        if c.in_flight == 0 {
            c.since = Some(Instant::now());
        }
        c.in_flight += 1;
    }

    pub(super) fn db_leave(&self) {
        let mut c = self.db.lock().unwrap_or_else(|p| p.into_inner());
        c.in_flight = c.in_flight.saturating_sub(1);
        if c.in_flight == 0 {
            if let Some(since) = c.since.take() {
                c.busy += since.elapsed();
            }
        }
    }

    fn db_busy(&self) -> Duration {
        self.db.lock().unwrap_or_else(|p| p.into_inner()).busy
    }
}

pub(super) fn progress_bar(out: &Output, total: u64) -> ProgressBar {
    out.progress_bar(
        total,
        &format!(
            "{} [{{bar:30}}] {{count}}/{{total}} · {{msg}} · {{rate}} · {}",
            t!("deliver-progress"),
            t!("progress-eta", eta = "{eta}"),
        ),
    )
}

/// The progress bar's counts, after an email's outcome. The counts' text is
/// rebuilt at most ten times a second (the bar draws no more often), not
/// for every email: a localised message per email was a tenth of the
/// client's time at full speed.
pub(super) fn show_counts(progress: &ProgressBar, tally: &Tally) {
    progress.inc(1);
    if progress.is_hidden() {
        return;
    }
    // (Another connection updating it now: this count shows next time.)
    let Ok(mut shown) = tally.counts_shown.try_lock() else {
        return;
    };
    if shown.is_some_and(|at| at.elapsed() < Duration::from_millis(100)) {
        return;
    }
    *shown = Some(Instant::now());
    progress.set_message(counts_text(tally));
}

/// The counts as the progress bar shows them.
fn counts_text(tally: &Tally) -> String {
    let (accepted, bounced) = (
        tally.sent.load(Ordering::Relaxed),
        tally.bounced.load(Ordering::Relaxed),
    );
    t!(
        "deliver-progress-counts",
        sent = accepted + bounced,
        bounced = bounced,
        failed = tally.failed.load(Ordering::Relaxed)
    )
}

/// Prints the summary: the `--json` document, or the lines for a person.
pub(super) fn finish(summary: DeliverySummary, out: &Output) -> Result<()> {
    if out.json {
        return out.json(&summary);
    }
    if summary.dry_run {
        out.print(t!(
            "deliver-dry-run",
            queued = summary.pending.unwrap_or(0),
            unknown = summary.unknown,
            smtp = summary.smtp.as_str()
        ));
        return Ok(());
    }
    // "sent" as on every screen: what left the sender, bounced included.
    let lang = crate::i18n::current();
    out.print(t!(
        "deliver-done",
        smtp = summary.smtp.as_str(),
        sent = summary.sent + summary.bounced,
        accepted = summary.sent,
        bounced = summary.bounced,
        failed = summary.failed,
        suppressed = summary.suppressed,
        retries = summary.retries,
        seconds = lang.seconds(summary.elapsed_secs),
        rate = lang.per_second(summary.emails_per_sec)
    ));
    if summary.released > 0 {
        out.print(t!("deliver-released", count = summary.released));
    }
    if summary.claimed == 0 && summary.unknown == 0 {
        out.print(t!("deliver-nothing"));
    }
    Ok(())
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
