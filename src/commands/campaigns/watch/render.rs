//! The watch screen as text: a pure function of the rows, the measured
//! rates, the width and a status line, so that it can be snapshot-tested.

use std::collections::HashMap;
use std::fmt::Write;

use super::data::Snapshot;
use crate::domain::CampaignAnalytics;
use crate::output::timestamp_cell;

/// How many finished campaigns the screen shows.
pub const SHOWN_FINISHED: usize = 8;

/// Emails settled per second for one campaign, measured between refreshes.
pub type Rates = HashMap<String, f64>;

/// Renders one refresh for a terminal `width` columns wide.
pub fn screen(snapshot: &Snapshot, rates: &Rates, width: usize, status: &str) -> String {
    let width = width.max(20);
    let mut out = String::new();
    let d = snapshot.dashboard.clone().unwrap_or_default();
    line(
        &mut out,
        width,
        &format!(
            "{} contacts · {} organisations · {} active campaign{} · {} emails sent today",
            count(d.total_contacts),
            count(d.total_organizations),
            count(d.active_campaigns),
            plural(d.active_campaigns),
            count(d.emails_sent_today),
        ),
    );
    if !status.is_empty() {
        line(&mut out, width, status);
    }
    out.push('\n');

    let sending = &snapshot.sending;
    line(
        &mut out,
        width,
        &format!("Envoi en progression ({})", sending.len()),
    );
    if sending.is_empty() {
        line(&mut out, width, "  No campaign is sending.");
    }
    for c in sending {
        sending_block(&mut out, width, c, rates.get(&c.campaign_id).copied());
    }
    out.push('\n');

    let sent = &snapshot.sent;
    line(
        &mut out,
        width,
        &format!("Campagne terminée ({})", sent.len()),
    );
    if sent.is_empty() {
        line(&mut out, width, "  No finished campaign yet.");
    }
    for c in sent.iter().take(SHOWN_FINISHED) {
        line(&mut out, width, &format!("  {}", c.campaign_name));
        let mut items = figures(c);
        if let Some(t) = c.completed_at.as_deref() {
            items.push(format!("completed {}", timestamp_cell(t)));
        }
        flow(&mut out, width, &items);
    }
    if sent.len() > SHOWN_FINISHED {
        line(
            &mut out,
            width,
            &format!("  … and {} more", sent.len() - SHOWN_FINISHED),
        );
    }
    out
}

fn sending_block(out: &mut String, width: usize, c: &CampaignAnalytics, rate: Option<f64>) {
    line(out, width, &format!("  {}", c.campaign_name));
    let percent = c.progress.clamp(0.0, 100.0);
    let remaining = c.pending_count + c.sending_count;
    let pace = match rate {
        Some(r) if r > 0.0 => format!(" · {} · ETA {}", per_second(r), eta(remaining as f64 / r)),
        Some(_) => " · 0/s".to_string(),
        None => String::new(),
    };
    let label = format!(" {percent:5.1}%");
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
    flow(out, width, &figures(c));
}

/// The figures of a campaign, as short items.
fn figures(c: &CampaignAnalytics) -> Vec<String> {
    vec![
        format!(
            "{} sent of {}",
            count(c.sent_count + c.delivered_count),
            count(c.total_emails)
        ),
        format!("{} delivered", count(c.delivered_count)),
        format!("{} failed", count(c.failed_count)),
        format!("{} bounced", count(c.bounced_count)),
        format!("success {:.2}%", c.success_rate),
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

fn count(n: i64) -> String {
    let digits = n.max(0).to_string();
    let mut grouped = String::new();
    for (i, ch) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            grouped.push(' ');
        }
        grouped.push(ch);
    }
    grouped
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        ""
    } else {
        "s"
    }
}

fn per_second(rate: f64) -> String {
    if rate >= 10.0 {
        format!("{}/s", count(rate.round() as i64))
    } else {
        format!("{rate:.1}/s")
    }
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
    fn counts_and_durations_read_well() {
        assert_eq!(count(1234567), "1 234 567");
        assert_eq!(count(12), "12");
        assert_eq!(eta(59.4), "59s");
        assert_eq!(eta(61.0), "1m01s");
        assert_eq!(eta(3725.0), "1h02m");
        assert_eq!(per_second(3.25), "3.2/s");
        assert_eq!(per_second(1500.0), "1 500/s");
    }

    #[test]
    fn long_lines_are_cut_to_the_width() {
        let mut out = String::new();
        line(&mut out, 5, "abcdefgh");
        assert_eq!(out, "abcd…\n");
    }
}
