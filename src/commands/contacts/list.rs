//! `mailsync contacts list`: the user's contacts through PostgREST, paged by
//! email (keyset paging, so the millionth contact costs what the first does,
//! and the server's row cap never truncates the answer).
//! Server side: tables `contacts` and `organizations`, and for
//! `--organization` the organisation-name rule (`organization_named`,
//! `contact_organization_spellings`) in `sql/MASTER-DATABASE.sql`. Tests: `tests/it/import.rs`
//! (`contacts_list_pages_past_the_servers_row_cap_and_filters_by_organisation`).

use crate::domain::Contact;
use crate::error::Result;
use crate::output::{timestamp_cell, Output};
use crate::settings::Config;

/// Rows per request; Supabase caps a response at 1000 by default.
const PAGE: u64 = 1000;

#[derive(Debug, Clone)]
pub struct Options {
    /// Only the contacts of this organisation (case-insensitive).
    pub organization: Option<String>,
    /// At most this many (0: all).
    pub limit: u64,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let limit = options.limit;
    let client = crate::supabase::user::user_client(config, out).await?;
    // Organisations match by the one rule: the spellings of the user's
    // organisation among their contacts.
    let organization = match &options.organization {
        None => None,
        Some(name) => match crate::supabase::lookup::organization_contacts(&client, name).await? {
            Some(found) => Some(found),
            None => {
                out.note(crate::t!(
                    "contacts-no-organisation",
                    name = format!("{name:?}")
                ));
                if out.json {
                    out.json(&Vec::<Contact>::new())?;
                }
                return Ok(());
            }
        },
    };
    let mut contacts: Vec<Contact> = Vec::new();
    let mut after: Option<String> = None;
    // An organisation none of the contacts has: nothing to ask for.
    let nobody = organization.as_ref().is_some_and(|o| o.is_empty());
    loop {
        let want = if nobody {
            0
        } else if limit == 0 {
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
            query = org.filter(query);
        }
        if let Some(last) = &after {
            query = query.gt("email", last);
        }
        let page: Vec<Contact> = client
            .fetch(query, &crate::t!("doing-listing-contacts"))
            .await?;
        // A page may be shorter than asked (the project's row cap): only an
        // empty page ends the list.
        if page.is_empty() {
            break;
        }
        after = page.last().map(|c| c.email.clone());
        contacts.extend(page);
    }
    if out.json {
        return out.json(&contacts);
    }
    let mut table = out.table([
        crate::t!("col-email"),
        crate::t!("col-organisation"),
        crate::t!("col-created"),
    ]);
    for c in &contacts {
        table.add_row(vec![
            crate::output::cell(&c.email),
            crate::output::cell(c.organization_name.as_deref().unwrap_or_default()),
            timestamp_cell(&c.created_at),
        ]);
    }
    out.print(table.to_string());
    out.print(crate::t!("contacts-count", count = contacts.len()));
    Ok(())
}
