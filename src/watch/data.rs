//! What a watch refresh reads: the user's sending and sent campaigns from
//! `campaign_analytics` and their `dashboard_analytics` row, through the REST
//! API as the user. The rows are kept as the views return them (for
//! `--json`) and typed for the screen.

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::Result;
use crate::rest::RestClient;

/// One `campaign_analytics` row, typed for the screen.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct CampaignRow {
    pub campaign_id: String,
    pub campaign_name: String,
    #[serde(default)]
    pub campaign_status: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default, deserialize_with = "number")]
    pub total_emails: f64,
    #[serde(default, deserialize_with = "number")]
    pub pending_count: f64,
    #[serde(default, deserialize_with = "number")]
    pub sending_count: f64,
    #[serde(default, deserialize_with = "number")]
    pub sent_count: f64,
    #[serde(default, deserialize_with = "number")]
    pub delivered_count: f64,
    #[serde(default, deserialize_with = "number")]
    pub failed_count: f64,
    #[serde(default, deserialize_with = "number")]
    pub bounced_count: f64,
    #[serde(default, deserialize_with = "number")]
    pub success_rate: f64,
    #[serde(default, deserialize_with = "number")]
    pub progress: f64,
}

impl CampaignRow {
    /// Emails no longer pending or sending.
    pub fn settled(&self) -> f64 {
        self.total_emails - self.pending_count - self.sending_count
    }
}

/// The user's `dashboard_analytics` row.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct DashboardRow {
    #[serde(default, deserialize_with = "number")]
    pub total_contacts: f64,
    #[serde(default, deserialize_with = "number")]
    pub total_organizations: f64,
    #[serde(default, deserialize_with = "number")]
    pub active_campaigns: f64,
    #[serde(default, deserialize_with = "number")]
    pub emails_sent_today: f64,
}

/// PostgREST sends `numeric` as a JSON number; some servers send a string.
fn number<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Null => Ok(0.0),
        other => Err(serde::de::Error::custom(format!("not a number: {other}"))),
    }
}

/// One refresh: `{"dashboard": {...}, "sending": [...], "sent": [...]}`.
#[derive(Debug, Clone, Serialize)]
pub struct Snapshot {
    pub dashboard: Value,
    pub sending: Vec<Value>,
    pub sent: Vec<Value>,
}

impl Snapshot {
    pub fn dashboard_row(&self) -> DashboardRow {
        serde_json::from_value(self.dashboard.clone()).unwrap_or_default()
    }

    pub fn sending_rows(&self) -> Vec<CampaignRow> {
        typed(&self.sending)
    }

    pub fn sent_rows(&self) -> Vec<CampaignRow> {
        typed(&self.sent)
    }
}

fn typed(rows: &[Value]) -> Vec<CampaignRow> {
    rows.iter()
        .filter_map(|r| serde_json::from_value(r.clone()).ok())
        .collect()
}

/// Reads the two views as the user.
pub async fn fetch(client: &RestClient) -> Result<Snapshot> {
    let sending = client
        .from("campaign_analytics")
        .select("*")
        .eq("campaign_status", "sending")
        .order("started_at.asc.nullslast,campaign_name.asc");
    let sent = client
        .from("campaign_analytics")
        .select("*")
        .eq("campaign_status", "sent")
        .order("completed_at.desc.nullslast,campaign_name.asc");
    let dashboard = client.from("dashboard_analytics").select("*");
    let (sending, sent, dashboard) = tokio::try_join!(
        client.fetch::<Vec<Value>>(sending, "reading campaign_analytics"),
        client.fetch::<Vec<Value>>(sent, "reading campaign_analytics"),
        client.fetch::<Vec<Value>>(dashboard, "reading dashboard_analytics"),
    )?;
    Ok(Snapshot {
        dashboard: dashboard.into_iter().next().unwrap_or(Value::Null),
        sending,
        sent,
    })
}
