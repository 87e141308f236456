//! Lookups several commands share, so that the rule behind each is written
//! once.

use serde::Deserialize;

use super::rest::RestClient;
use crate::error::Result;

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
