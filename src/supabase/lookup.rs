//! Lookups several commands share, so that the rule behind each is written
//! once.

use serde::Deserialize;

use super::rest::RestClient;
use crate::domain::Campaign;
use crate::error::{Error, Result};
use crate::output::timestamp_cell;

/// The user's organisation named `name`, spelled as stored, by the
/// organisation-name rule of `send_campaign` in `sql/MASTER-DATABASE.sql`:
/// white space collapsed and trimmed, case ignored (`organizations.name_key`).
/// `None` when the user has no such organisation.
pub async fn organization(client: &RestClient, name: &str) -> Result<Option<String>> {
    #[derive(Deserialize)]
    struct Found {
        name: String,
    }
    let key = name
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
        .to_lowercase();
    let found: Vec<Found> = client
        .fetch(
            client
                .from("organizations")
                .select("name")
                .eq("name_key", key)
                .limit(1),
            "looking up the organisation",
        )
        .await?;
    Ok(found.into_iter().next().map(|o| o.name))
}

/// The user's campaign named by id or by (unique) name; an error naming
/// the candidates when the name is not unique.
pub async fn campaign(client: &RestClient, campaign: &str) -> Result<Campaign> {
    let by_id = uuid::Uuid::parse_str(campaign).is_ok();
    let query = client
        .from("email_campaigns")
        .select("id,name,subject,status,created_at,started_at,completed_at")
        .eq(if by_id { "id" } else { "name" }, campaign)
        .order("created_at.desc");
    let mut found: Vec<Campaign> = client.fetch(query, "finding the campaign").await?;
    match found.len() {
        0 => Err(Error::failure(format!("no campaign {campaign:?}"))
            .with_hint("mailsync campaigns list shows yours")),
        1 => Ok(found.remove(0)),
        n => Err(Error::usage(format!(
            "{n} campaigns are named {campaign:?}; name one by id: {}",
            found
                .iter()
                .map(|c| format!("{} ({}, {})", c.id, c.status, timestamp_cell(&c.created_at)))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}
