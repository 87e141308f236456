//! `mailsync contacts list`: the user's contacts through PostgREST, paged by
//! email (keyset paging, so the millionth contact costs what the first does,
//! and the server's row cap never truncates the answer).

use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::error::Result;
use crate::output::Output;

/// Rows per request; Supabase caps a response at 1000 by default.
const PAGE: u64 = 1000;

#[derive(Debug, Serialize, Deserialize)]
pub struct Contact {
    pub id: String,
    pub email: String,
    pub organization_name: Option<String>,
    pub created_at: String,
}

pub async fn list(
    organization: Option<&str>,
    limit: u64,
    config: &Config,
    out: &Output,
) -> Result<()> {
    let client = crate::auth::user_client(config, out).await?;
    // Organisations match case-insensitively: find the user's spelling.
    let organization = match organization {
        None => None,
        Some(name) => {
            let key = name
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ")
                .to_lowercase();
            let found: Vec<serde_json::Value> = client
                .fetch(
                    client
                        .from("organizations")
                        .select("name")
                        .eq("name_key", key)
                        .limit(1),
                    "looking up the organisation",
                )
                .await?;
            match found.first().and_then(|o| o["name"].as_str()) {
                Some(name) => Some(name.to_string()),
                None => {
                    out.note(format!("no organisation named {name:?}"));
                    if out.json {
                        out.json(&Vec::<Contact>::new())?;
                    }
                    return Ok(());
                }
            }
        }
    };
    let mut contacts: Vec<Contact> = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let want = if limit == 0 {
            PAGE
        } else {
            PAGE.min(limit - contacts.len() as u64)
        };
        if want == 0 {
            break;
        }
        let mut query = client
            .from("contacts")
            .select("id,email,organization_name,created_at")
            .order("email.asc")
            .limit(want as usize);
        if let Some(org) = &organization {
            query = query.eq("organization_name", org);
        }
        if let Some(last) = &after {
            query = query.gt("email", last);
        }
        let page: Vec<Contact> = client.fetch(query, "listing contacts").await?;
        let got = page.len() as u64;
        after = page.last().map(|c| c.email.clone());
        contacts.extend(page);
        if got < want {
            break;
        }
    }
    if out.json {
        return out.json(&contacts);
    }
    let mut table = out.table(["email", "organisation", "created"]);
    for c in &contacts {
        table.add_row(vec![
            c.email.clone(),
            c.organization_name.clone().unwrap_or_default(),
            c.created_at
                .chars()
                .take(16)
                .collect::<String>()
                .replace('T', " "),
        ]);
    }
    out.print(table.to_string());
    out.print(format!("{} contact(s)", contacts.len()));
    Ok(())
}
