//! `mailsync campaigns list`: campaigns with their totals, newest first.
//! Server side: view `campaign_analytics` in `sql/MASTER-DATABASE.sql`.
//! Tests: `tests/it/campaigns.rs`.

use crate::domain::{CampaignAnalytics, CampaignStatus};
use crate::error::Result;
use crate::output::{timestamp_cell, Output};
use crate::settings::Config;
use crate::t;

#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Only campaigns with this status.
    pub status: Option<CampaignStatus>,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let client = crate::supabase::user::user_client(config, out).await?;
    let mut query = client
        .from("campaign_analytics")
        .select("*")
        .order("created_at.desc,campaign_id.desc");
    if let Some(status) = options.status {
        query = query.eq("campaign_status", status.as_str());
    }
    let rows: Vec<CampaignAnalytics> = client
        .fetch_all(query, &t!("doing-listing-campaigns"))
        .await?;
    if out.json {
        return out.json(&rows);
    }
    let lang = crate::i18n::current();
    let mut table = out.table([
        t!("col-id"),
        t!("col-name"),
        t!("col-status"),
        t!("col-created"),
        t!("col-emails"),
        t!("col-sent"),
        t!("col-delivered"),
        t!("col-bounced"),
        t!("col-failed"),
        t!("col-success"),
    ]);
    for c in &rows {
        table.add_row(vec![
            crate::supabase::lookup::short_id(&c.campaign_id).to_string(),
            c.campaign_name.clone(),
            c.campaign_status.to_string(),
            timestamp_cell(&c.created_at),
            lang.count(c.total_emails),
            lang.count(c.sent()),
            lang.count(c.delivered_count),
            lang.count(c.bounced_count),
            lang.count(c.failed_count),
            lang.percent(c.success_rate),
        ]);
    }
    out.print(table.to_string());
    out.print(t!("campaigns-count", count = rows.len()));
    Ok(())
}
