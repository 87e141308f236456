//! mailsync's own types for what the schema holds: every command reads and
//! prints these, and `--json` serialises them, so a command's JSON shape is
//! defined here rather than by whatever the server sent. Field names are the
//! columns of the tables and views in `sql/MASTER-DATABASE.sql`; statuses are
//! the SQL text values; counts are integers.

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer, Serialize};
use serde_json::Value;

use crate::error::{Error, Result};

/// `email_campaigns.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CampaignStatus {
    #[default]
    Draft,
    Scheduled,
    Sending,
    Sent,
    Failed,
}

impl CampaignStatus {
    pub const ALL: [CampaignStatus; 5] = [
        CampaignStatus::Draft,
        CampaignStatus::Scheduled,
        CampaignStatus::Sending,
        CampaignStatus::Sent,
        CampaignStatus::Failed,
    ];

    /// The SQL text value.
    pub fn as_str(self) -> &'static str {
        match self {
            CampaignStatus::Draft => "draft",
            CampaignStatus::Scheduled => "scheduled",
            CampaignStatus::Sending => "sending",
            CampaignStatus::Sent => "sent",
            CampaignStatus::Failed => "failed",
        }
    }

    /// Whether `send_campaign` accepts a campaign in this status.
    pub fn can_send(self) -> bool {
        matches!(self, CampaignStatus::Draft | CampaignStatus::Scheduled)
    }
}

impl fmt::Display for CampaignStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `emails_sent.status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EmailStatus {
    Pending,
    Sending,
    Sent,
    Delivered,
    Failed,
    Bounced,
}

impl EmailStatus {
    pub const ALL: [EmailStatus; 6] = [
        EmailStatus::Pending,
        EmailStatus::Sending,
        EmailStatus::Sent,
        EmailStatus::Delivered,
        EmailStatus::Failed,
        EmailStatus::Bounced,
    ];

    /// The SQL text value.
    pub fn as_str(self) -> &'static str {
        match self {
            EmailStatus::Pending => "pending",
            EmailStatus::Sending => "sending",
            EmailStatus::Sent => "sent",
            EmailStatus::Delivered => "delivered",
            EmailStatus::Failed => "failed",
            EmailStatus::Bounced => "bounced",
        }
    }

    /// Whether the email has its outcome: it left the queue for good
    /// (`pending` waits to be claimed, `sending` is held by a worker).
    pub fn is_settled(self) -> bool {
        !matches!(self, EmailStatus::Pending | EmailStatus::Sending)
    }
}

impl fmt::Display for EmailStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A row of `email_campaigns`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Campaign {
    pub id: String,
    pub name: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub status: CampaignStatus,
    pub created_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
}

/// The columns of [`Campaign`], for a `select=`.
pub const CAMPAIGN_COLUMNS: &str =
    "id,name,subject,content,status,created_at,started_at,completed_at";

/// A row of the `campaign_analytics` view.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct CampaignAnalytics {
    pub campaign_id: String,
    pub campaign_name: String,
    #[serde(default)]
    pub subject: String,
    #[serde(default)]
    pub campaign_status: CampaignStatus,
    #[serde(default)]
    pub user_id: String,
    #[serde(default)]
    pub created_at: String,
    #[serde(default)]
    pub started_at: Option<String>,
    #[serde(default)]
    pub completed_at: Option<String>,
    #[serde(default, deserialize_with = "count")]
    pub total_emails: i64,
    #[serde(default, deserialize_with = "count")]
    pub pending_count: i64,
    #[serde(default, deserialize_with = "count")]
    pub sending_count: i64,
    #[serde(default, deserialize_with = "count")]
    pub sent_count: i64,
    #[serde(default, deserialize_with = "count")]
    pub delivered_count: i64,
    #[serde(default, deserialize_with = "count")]
    pub failed_count: i64,
    #[serde(default, deserialize_with = "count")]
    pub bounced_count: i64,
    /// Percent of emails sent or delivered, two decimals (SQL `numeric`).
    #[serde(default, deserialize_with = "decimal")]
    pub success_rate: f64,
    /// Percent of emails settled, two decimals (SQL `numeric`).
    #[serde(default, deserialize_with = "decimal")]
    pub progress: f64,
}

impl CampaignAnalytics {
    /// What mailsync calls "sent", on every screen: emails that left the
    /// sender, whatever happened next (`sent`, `delivered` or `bounced`:
    /// the statuses that set `emails_sent.sent_at`, which is also what the
    /// dashboard's `emails_sent_today` counts). `failed` never left.
    pub fn sent(&self) -> i64 {
        self.sent_count + self.delivered_count + self.bounced_count
    }

    /// Emails no longer pending or sending.
    pub fn settled(&self) -> i64 {
        self.total_emails - self.pending_count - self.sending_count
    }
}

/// The user's row of the `dashboard_analytics` view.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct DashboardAnalytics {
    #[serde(default)]
    pub user_id: String,
    #[serde(default, deserialize_with = "count")]
    pub total_contacts: i64,
    #[serde(default, deserialize_with = "count")]
    pub total_organizations: i64,
    #[serde(default, deserialize_with = "count")]
    pub active_campaigns: i64,
    #[serde(default, deserialize_with = "count")]
    pub emails_sent_today: i64,
}

/// A row of `email_templates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Template {
    pub id: String,
    pub name: String,
    pub subject: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub content: Option<String>,
    pub created_at: String,
}

/// A row of `contacts`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub email: String,
    pub organization_name: Option<String>,
    pub created_at: String,
}

/// The content of a campaign or template, as given on the command line.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    File(PathBuf),
}

impl Content {
    pub fn read(&self) -> Result<String> {
        match self {
            Content::Text(text) => Ok(text.clone()),
            Content::File(path) => std::fs::read_to_string(path).map_err(|e| {
                Error::data(crate::t!(
                    "content-error-read",
                    file = path.display().to_string(),
                    reason = e.to_string()
                ))
            }),
        }
    }
}

/// A count: PostgREST sends `bigint` as a JSON number; some servers send a
/// string.
fn count<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<i64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => n
            .as_i64()
            .or_else(|| n.as_f64().map(|f| f.round() as i64))
            .ok_or_else(|| serde::de::Error::custom(format!("not a count: {n}"))),
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Null => Ok(0),
        other => Err(serde::de::Error::custom(format!("not a count: {other}"))),
    }
}

/// A `numeric`: a JSON number, or a string from some servers.
fn decimal<'de, D: Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    match Value::deserialize(d)? {
        Value::Number(n) => Ok(n.as_f64().unwrap_or(0.0)),
        Value::String(s) => s.parse().map_err(serde::de::Error::custom),
        Value::Null => Ok(0.0),
        other => Err(serde::de::Error::custom(format!("not a number: {other}"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_are_the_sql_text_values() {
        for status in CampaignStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            let back: CampaignStatus = serde_json::from_value(json).unwrap();
            assert_eq!(back, status);
        }
        assert!(CampaignStatus::Draft.can_send() && !CampaignStatus::Sent.can_send());
    }

    #[test]
    fn email_statuses_are_the_sql_text_values_and_settle_once_sent_or_refused() {
        for status in EmailStatus::ALL {
            let json = serde_json::to_value(status).unwrap();
            assert_eq!(json, status.as_str());
            assert_eq!(status.to_string(), status.as_str());
            let back: EmailStatus = serde_json::from_value(json).unwrap();
            assert_eq!(back, status);
        }
        let settled: Vec<EmailStatus> = EmailStatus::ALL
            .into_iter()
            .filter(|s| s.is_settled())
            .collect();
        assert_eq!(
            settled,
            [
                EmailStatus::Sent,
                EmailStatus::Delivered,
                EmailStatus::Failed,
                EmailStatus::Bounced
            ]
        );
    }

    #[test]
    fn counts_read_numbers_and_strings() {
        let row: DashboardAnalytics = serde_json::from_value(serde_json::json!({
            "user_id": "u", "total_contacts": 3, "total_organizations": "2",
            "active_campaigns": null, "emails_sent_today": 4
        }))
        .unwrap();
        assert_eq!(
            (
                row.total_contacts,
                row.total_organizations,
                row.active_campaigns
            ),
            (3, 2, 0)
        );
    }
}
