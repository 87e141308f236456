//! Lookups several commands share, so that the rule behind each is written
//! once.

use super::rest::RestClient;
use crate::error::Result;
use crate::t;

/// The user's organisation named `name`, spelled as stored, by the
/// organisation-name rule (`organization_named` in
/// `sql/MASTER-DATABASE.sql`: white space trimmed and collapsed, case
/// ignored). `None` when the user has no such organisation.
pub async fn organization(client: &RestClient, name: &str) -> Result<Option<String>> {
    let what = &t!("doing-organisation-lookup");
    client
        .execute_idempotent(
            client.rpc("organization_named", &serde_json::json!({ "name": name })),
            None,
            what,
        )
        .await?
        .json(what)
}

/// The contacts of one organisation, by the organisation-name rule: the
/// organisation's name as stored, and the spellings its contacts carry (a
/// contact keeps the case it was written in: "ACME corp" belongs to "Acme
/// Corp", as `campaigns send` counts it).
#[derive(Debug, Clone)]
pub struct OrganizationContacts {
    pub name: String,
    spellings: Vec<String>,
}

impl OrganizationContacts {
    /// Whether no contact has the organisation (nothing to ask the server).
    pub fn is_empty(&self) -> bool {
        self.spellings.is_empty()
    }

    /// Restricts a query of `contacts` to them.
    pub fn filter(&self, query: postgrest::Builder) -> postgrest::Builder {
        // PostgREST's list syntax: each value quoted, so that commas,
        // parentheses and quotes in a name are plain characters.
        let quoted = self
            .spellings
            .iter()
            .map(|s| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\"")));
        query.in_("organization_name", quoted)
    }
}

/// The user's organisation named `name` (see [`organization`]) and the
/// spellings of it its contacts carry (`contact_organization_spellings` in
/// `sql/MASTER-DATABASE.sql`). `None` when the user has no such
/// organisation.
pub async fn organization_contacts(
    client: &RestClient,
    name: &str,
) -> Result<Option<OrganizationContacts>> {
    let Some(stored) = organization(client, name).await? else {
        return Ok(None);
    };
    let what = "looking up the organisation's contacts";
    let spellings: Vec<String> = client
        .execute_idempotent(
            client.rpc(
                "contact_organization_spellings",
                &serde_json::json!({ "name": name }),
            ),
            None,
            what,
        )
        .await?
        .json(what)?;
    Ok(Some(OrganizationContacts {
        name: stored,
        spellings,
    }))
}

/// How many characters of a campaign's id `campaigns list` shows.
pub const SHORT_ID: usize = 8;

/// A campaign's id as `campaigns list` shows it: its first characters,
/// enough to name it (any unique prefix does).
pub fn short_id(id: &str) -> &str {
    id.get(..SHORT_ID).unwrap_or(id)
}

/// The user's campaign named by `text`: its full id, a unique prefix of its
/// id (as git abbreviates commits; at least 4 characters), or its unique
/// name. When several match, the error lists them with their short ids.
pub async fn campaign(client: &RestClient, text: &str) -> Result<crate::domain::Campaign> {
    use crate::domain::Campaign;
    use crate::error::Error;
    let text = text.trim();
    let columns = "id,name,subject,status,created_at,started_at,completed_at";
    if uuid::Uuid::parse_str(text).is_ok() {
        let query = client
            .from("email_campaigns")
            .select(columns)
            .eq("id", text);
        let mut found: Vec<Campaign> = client.fetch(query, &t!("doing-finding-campaign")).await?;
        return match found.pop() {
            Some(c) => Ok(c),
            None => Err(Error::refused(t!("error-no-campaign-id", id = text))
                .with_hint(t!("hint-campaigns-list"))),
        };
    }
    let query = client
        .from("email_campaigns")
        .select(columns)
        .order("created_at.desc");
    let all: Vec<Campaign> = client.fetch(query, &t!("doing-finding-campaign")).await?;
    let mut found = matching(&all, text);
    match found.len() {
        0 => Err(
            Error::refused(t!("error-no-campaign-named", text = format!("{text:?}")))
                .with_hint(t!("hint-campaigns-list-ids")),
        ),
        1 => Ok(found.remove(0).clone()),
        n => Err(Error::usage(t!(
            "error-campaigns-ambiguous",
            count = n,
            text = format!("{text:?}"),
            matches = found
                .iter()
                .map(|c| format!(
                    "{} {:?} ({}, {})",
                    short_id(&c.id),
                    c.name,
                    c.status,
                    crate::output::timestamp_cell(&c.created_at)
                ))
                .collect::<Vec<_>>()
                .join("; ")
        ))
        .with_hint(t!("hint-longer-prefix"))),
    }
}

/// The campaigns `text` names: by exact name, else by name ignoring case,
/// plus those whose id starts with it.
fn matching<'a>(
    all: &'a [crate::domain::Campaign],
    text: &str,
) -> Vec<&'a crate::domain::Campaign> {
    let lower = text.to_ascii_lowercase();
    let is_prefix = lower.len() >= 4 && lower.chars().all(|c| c.is_ascii_hexdigit() || c == '-');
    let by_id = |c: &&crate::domain::Campaign| is_prefix && c.id.starts_with(&lower);
    let mut found: Vec<_> = all.iter().filter(|c| c.name == text || by_id(c)).collect();
    if found.is_empty() {
        found = all
            .iter()
            .filter(|c| c.name.to_lowercase() == text.to_lowercase())
            .collect();
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{Campaign, CampaignStatus};

    fn campaign(id: &str, name: &str) -> Campaign {
        Campaign {
            id: id.into(),
            name: name.into(),
            subject: String::new(),
            content: None,
            status: CampaignStatus::Draft,
            created_at: String::new(),
            started_at: None,
            completed_at: None,
        }
    }

    #[test]
    fn prefixes_and_names() {
        let all = [
            campaign("3f2a1111-0000-0000-0000-000000000000", "Rentrée"),
            campaign("3f2b2222-0000-0000-0000-000000000000", "Relance"),
            campaign("aaaa3333-0000-0000-0000-000000000000", "Relance"),
        ];
        assert_eq!(matching(&all, "3f2a").len(), 1);
        assert_eq!(matching(&all, "3F2").len(), 0, "too short for a prefix");
        assert_eq!(matching(&all, "3f2").len(), 0);
        assert_eq!(matching(&all, "3f2a1").len(), 1);
        assert_eq!(matching(&all, "3f2a1").len(), 1);
        assert_eq!(matching(&all, "Relance").len(), 2);
        assert_eq!(matching(&all, "rentrée").len(), 1);
        assert_eq!(short_id(&all[0].id), "3f2a1111");
    }
}
