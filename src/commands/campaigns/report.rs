//! `mailsync campaigns report CAMPAIGN FILE.xlsx`: the workbook a person
//! sends to a colleague after a campaign. Sheet "Campaign": the campaign and
//! its figures (one row per figure); sheet "Recipients": every email of the
//! campaign with its recipient and status, keyset paged by id through the
//! REST API under the user's JWT and written as it arrives (constant memory).
//! Server side: view `campaign_analytics`, table `emails_sent` in
//! `sql/MASTER-DATABASE.sql`. Tests: `tests/it/campaigns_report.rs`.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::domain::CampaignAnalytics;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::settings::Config;
use crate::spreadsheet::{Cell, Kind, SheetWriter};
use crate::supabase::rest::RestClient;
use crate::t;

/// Rows asked for per request; a lower server cap only means more pages.
const PAGE: usize = 1000;

/// The "Recipients" sheet's columns.
pub const RECIPIENT_HEADER: [&str; 6] = [
    "email",
    "organization",
    "status",
    "sent_at",
    "delivered_at",
    "error_message",
];

#[derive(Debug, Clone)]
pub struct Options {
    /// The campaign: its id, or its name when unique.
    pub campaign: String,
    /// The workbook to write (.xlsx).
    pub file: PathBuf,
}

/// An `emails_sent` row as reported.
#[derive(Debug, Deserialize)]
struct Recipient {
    id: String,
    recipient_email: String,
    recipient_organization: Option<String>,
    status: String,
    sent_at: Option<String>,
    delivered_at: Option<String>,
    error_message: Option<String>,
}

#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    campaign_id: String,
    campaign_name: String,
    recipients: u64,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    if Kind::of(&options.file)? != Kind::Xlsx || options.file.as_os_str() == "-" {
        return Err(Error::usage(t!(
            "report-error-not-xlsx",
            file = options.file.display().to_string()
        ))
        .with_hint(t!("report-hint-xlsx")));
    }
    let client = crate::supabase::user::user_client(config, out).await?;
    let campaign = crate::supabase::lookup::campaign(&client, &options.campaign).await?;
    let figures: Vec<CampaignAnalytics> = client
        .fetch(
            client
                .from("campaign_analytics")
                .select("*")
                .eq("campaign_id", &campaign.id),
            &t!("doing-reading-figures"),
        )
        .await?;
    let figures = figures.into_iter().next().unwrap_or_default();

    let mut book = SheetWriter::create(&options.file)?;
    let summary = book.add_sheet("Campaign", &[22.0, 40.0])?;
    book.header(summary, &["figure", "value"])?;
    let text = |v: &Option<String>| v.clone().unwrap_or_default();
    for (name, value) in [
        ("campaign", campaign.name.clone()),
        ("id", campaign.id.clone()),
        ("subject", campaign.subject.clone()),
        ("status", campaign.status.to_string()),
        ("created_at", campaign.created_at.clone()),
        ("started_at", text(&campaign.started_at)),
        ("completed_at", text(&campaign.completed_at)),
    ] {
        book.row(summary, &[Cell::Text(name), Cell::Text(&value)])?;
    }
    for (name, value) in [
        ("total_emails", figures.total_emails as f64),
        ("pending", figures.pending_count as f64),
        ("sending", figures.sending_count as f64),
        ("sent", figures.sent_count as f64),
        ("delivered", figures.delivered_count as f64),
        ("failed", figures.failed_count as f64),
        ("bounced", figures.bounced_count as f64),
        ("success_rate_percent", figures.success_rate),
        ("progress_percent", figures.progress),
    ] {
        book.row(summary, &[Cell::Text(name), Cell::Number(value)])?;
    }

    let sheet = book.add_sheet("Recipients", &[34.0, 30.0, 11.0, 26.0, 26.0, 40.0])?;
    book.header(sheet, &RECIPIENT_HEADER)?;
    let mut recipients = 0u64;
    let mut after: Option<String> = None;
    loop {
        let rows = page(&client, &campaign.id, after.as_deref()).await?;
        let Some(last) = rows.last() else { break };
        after = Some(last.id.clone());
        for r in &rows {
            book.row(
                sheet,
                &[
                    Cell::Text(&r.recipient_email),
                    optional(&r.recipient_organization),
                    Cell::Text(&r.status),
                    optional(&r.sent_at),
                    optional(&r.delivered_at),
                    optional(&r.error_message),
                ],
            )?;
        }
        recipients += rows.len() as u64;
    }
    book.finish()?;
    let summary = Summary {
        file: options.file.display().to_string(),
        campaign_id: campaign.id,
        campaign_name: campaign.name,
        recipients,
    };
    if out.json {
        return out.json(&summary);
    }
    out.print(crate::t!(
        "report-done",
        file = summary.file.as_str(),
        name = format!("{:?}", summary.campaign_name),
        count = summary.recipients
    ));
    Ok(())
}

/// The campaign's emails after the id `after`, at most [`PAGE`].
async fn page(client: &RestClient, campaign: &str, after: Option<&str>) -> Result<Vec<Recipient>> {
    let mut query = client
        .from("emails_sent")
        .select(
            "id,recipient_email,recipient_organization,status,sent_at,delivered_at,error_message",
        )
        .eq("campaign_id", campaign)
        .order("id.asc")
        .limit(PAGE);
    if let Some(id) = after {
        query = query.gt("id", id);
    }
    client.fetch(query, &t!("doing-listing-recipients")).await
}

/// An optional text cell: empty when absent.
fn optional(v: &Option<String>) -> Cell<'_> {
    match v.as_deref() {
        None | Some("") => Cell::Empty,
        Some(t) => Cell::Text(t),
    }
}
