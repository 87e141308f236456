//! What a watch refresh reads: the user's sending and sent campaigns from
//! `campaign_analytics` and their `dashboard_analytics` row, through the REST
//! API as the user, as domain types (which `--json` prints with the views'
//! column names).

use serde::{Deserialize, Serialize};

use crate::domain::{CampaignAnalytics, CampaignStatus, DashboardAnalytics};
use crate::error::Result;
use crate::supabase::rest::RestClient;
use crate::t;

/// One refresh: `{"dashboard": {...}, "sending": [...], "sent": [...]}`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub dashboard: Option<DashboardAnalytics>,
    pub sending: Vec<CampaignAnalytics>,
    pub sent: Vec<CampaignAnalytics>,
}

/// Reads the two views as the user.
pub async fn fetch(client: &RestClient) -> Result<Snapshot> {
    let sending = client
        .from("campaign_analytics")
        .select("*")
        .eq("campaign_status", CampaignStatus::Sending.as_str())
        .order("started_at.asc.nullslast,campaign_name.asc,campaign_id.asc");
    let sent = client
        .from("campaign_analytics")
        .select("*")
        .eq("campaign_status", CampaignStatus::Sent.as_str())
        .order("completed_at.desc.nullslast,campaign_name.asc,campaign_id.asc");
    let dashboard = client.from("dashboard_analytics").select("*");
    let reading_campaigns = t!("doing-reading-campaign-analytics");
    let reading_dashboard = t!("doing-reading-dashboard");
    let (sending, sent, dashboard) = tokio::try_join!(
        client.fetch_all::<CampaignAnalytics>(sending, &reading_campaigns),
        client.fetch_all::<CampaignAnalytics>(sent, &reading_campaigns),
        client.fetch::<Vec<DashboardAnalytics>>(dashboard, &reading_dashboard),
    )?;
    Ok(Snapshot {
        dashboard: dashboard.into_iter().next(),
        sending,
        sent,
    })
}
