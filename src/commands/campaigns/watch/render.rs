//! The watch screen as text: a pure function of the rows, the measured
//! rates, the width and a status line, so that it can be snapshot-tested.
//! Campaign names and the status line are shown through
//! [`crate::output::cell`]: a control character in them is shown escaped,
//! never acted on by the terminal, and a line break cannot break the screen.

use std::collections::HashMap;
use std::fmt::Write;

use super::data::Snapshot;
use crate::domain::CampaignAnalytics;
use crate::i18n::{self, Lang};
use crate::output::{cell, timestamp_cell};
use crate::t_in;

/// How many finished campaigns the screen shows.
pub const SHOWN_FINISHED: usize = 8;

/// Emails settled per second for one campaign, measured between refreshes.
pub type Rates = HashMap<String, f64>;

/// Renders one refresh for a terminal `width` columns wide, in the run's
/// language.
pub fn screen(snapshot: &Snapshot, rates: &Rates, width: usize, status: &str) -> String {
    screen_in(i18n::current(), snapshot, rates, width, status)
}

/// [`screen`] in the language `lang`.
pub fn screen_in(
    lang: Lang,
    snapshot: &Snapshot,
    rates: &Rates,
    width: usize,
    status: &str,
) -> String {
    let width = width.max(20);
    let mut out = String::new();
    let d = snapshot.dashboard.clone().unwrap_or_default();
    line(
        &mut out,
        width,
        &t_in!(
            lang,
            "watch-summary",
            contacts = d.total_contacts,
            organizations = d.total_organizations,
            active = d.active_campaigns,
            sent_today = d.emails_sent_today,
        ),
    );
    if !status.is_empty() {
        // It may quote a server's words.
        line(&mut out, width, &cell(status));
    }
    out.push('\n');

    let sending = &snapshot.sending;
    line(
        &mut out,
        width,
        &t_in!(lang, "watch-sending", count = sending.len()),
    );
    if sending.is_empty() {
        line(
            &mut out,
            width,
            &format!("  {}", t_in!(lang, "watch-none-sending")),
        );
    }
    for c in sending {
        sending_block(lang, &mut out, width, c, rates.get(&c.campaign_id).copied());
    }
    out.push('\n');

    let sent = &snapshot.sent;
    line(
        &mut out,
        width,
        &t_in!(lang, "watch-finished", count = sent.len()),
    );
    if sent.is_empty() {
        line(
            &mut out,
            width,
            &format!("  {}", t_in!(lang, "watch-none-finished")),
        );
    }
    for c in sent.iter().take(SHOWN_FINISHED) {
        line(&mut out, width, &format!("  {}", cell(&c.campaign_name)));
        let mut items = figures(lang, c);
        if let Some(t) = c.completed_at.as_deref() {
            items.push(t_in!(lang, "watch-completed-at", at = timestamp_cell(t)));
        }
        flow(&mut out, width, &items);
    }
    if sent.len() > SHOWN_FINISHED {
        line(
            &mut out,
            width,
            &format!(
                "  {}",
                t_in!(lang, "watch-more", count = sent.len() - SHOWN_FINISHED)
            ),
        );
    }
    out
}

fn sending_block(
    lang: Lang,
    out: &mut String,
    width: usize,
    c: &CampaignAnalytics,
    rate: Option<f64>,
) {
    line(out, width, &format!("  {}", cell(&c.campaign_name)));
    let percent = c.progress.clamp(0.0, 100.0);
    let remaining = c.pending_count + c.sending_count;
    let pace = match rate {
        Some(r) if r > 0.0 => format!(
            " · {} · {}",
            lang.per_second(r),
            t_in!(lang, "watch-eta", eta = eta(remaining as f64 / r))
        ),
        Some(_) => format!(" · {}", lang.per_second(0.0)),
        None => String::new(),
    };
    let label = format!(" {:>6}", lang.percent(percent));
    // The bar, its percentage and the pace on one line when they fit; the
    // bar shrinks first, then the pace moves to the next line.
    let fixed = 6 + label.chars().count();
    let (bar_width, pace_here) = if width >= fixed + pace.chars().count() + 10 {
        ((width - fixed - pace.chars().count()).min(50), true)
    } else {
        (width.saturating_sub(fixed).clamp(5, 50), false)
    };
    let filled = ((percent / 100.0) * bar_width as f64).round() as usize;
    let filled = filled.min(bar_width);
    let bar = format!(
        "    [{}{}]{label}",
        "█".repeat(filled),
        "░".repeat(bar_width - filled)
    );
    if pace_here {
        line(out, width, &format!("{bar}{pace}"));
    } else {
        line(out, width, &bar);
        if let Some(pace) = pace.strip_prefix(" · ") {
            flow(
                out,
                width,
                &pace.split(" · ").map(str::to_string).collect::<Vec<_>>(),
            );
        }
    }
    flow(out, width, &figures(lang, c));
}

/// The figures of a campaign, as short items. "sent" is
/// [`CampaignAnalytics::sent`], as on every screen.
fn figures(lang: Lang, c: &CampaignAnalytics) -> Vec<String> {
    vec![
        t_in!(
            lang,
            "watch-sent-of",
            sent = c.sent(),
            total = c.total_emails
        ),
        t_in!(lang, "watch-delivered", count = c.delivered_count),
        t_in!(lang, "watch-bounced", count = c.bounced_count),
        t_in!(lang, "watch-failed", count = c.failed_count),
        t_in!(lang, "watch-success", rate = lang.percent(c.success_rate)),
    ]
}

/// Items joined by ` · `, wrapped at `width` with a four-space indent.
fn flow(out: &mut String, width: usize, items: &[String]) {
    let mut current = String::from("   ");
    for item in items {
        let separator = if current.trim().is_empty() {
            " "
        } else {
            " · "
        };
        if current.trim().is_empty()
            || current.chars().count() + separator.chars().count() + item.chars().count() <= width
        {
            current.push_str(separator);
            current.push_str(item);
        } else {
            line(out, width, &current);
            current = format!("    {item}");
        }
    }
    if !current.trim().is_empty() {
        line(out, width, &current);
    }
}

/// Appends `text` cut to `width` characters, and a newline.
fn line(out: &mut String, width: usize, text: &str) {
    let count = text.chars().count();
    if count <= width {
        out.push_str(text);
    } else {
        out.extend(text.chars().take(width.saturating_sub(1)));
        out.push('…');
    }
    out.push('\n');
}

fn eta(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    let mut text = String::new();
    if s >= 3600 {
        let _ = write!(text, "{}h{:02}m", s / 3600, (s % 3600) / 60);
    } else if s >= 60 {
        let _ = write!(text, "{}m{:02}s", s / 60, s % 60);
    } else {
        let _ = write!(text, "{s}s");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(eta(59.4), "59s");
        assert_eq!(eta(61.0), "1m01s");
        assert_eq!(eta(3725.0), "1h02m");
    }

    #[test]
    fn long_lines_are_cut_to_the_width() {
        let mut out = String::new();
        line(&mut out, 5, "abcdefgh");
        assert_eq!(out, "abcd…\n");
    }
}
