//! `mailsync contacts export FILE`: every contact of the signed-in user (of
//! one organisation with `--organization`) to `.xlsx` or `.csv` (`-`: CSV on
//! stdout), in the import's layout: A organisation, B email, then the other
//! columns, under a header row. Importing the file back changes nothing.
//!
//! Read through the REST API under the user's JWT (RLS applies), keyset
//! paged by email: each page asks for the emails after the last one seen, and
//! the export ends on an empty page, so it is complete whatever row cap the
//! server has. Rows are written as they arrive (the workbook in constant
//! memory mode), while the next page is being fetched: memory does not grow
//! with the number of contacts.
//! Server side: table `contacts` and its index `contacts_user_email_key` /
//! `contacts_user_organization_idx`, and for `--organization` the
//! organisation-name rule (`organization_named`,
//! `contact_organization_spellings`) in `sql/MASTER-DATABASE.sql`.
//! Tests: `tests/it/contacts_export.rs`; benchmark: `scripts/bench-export`.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};
use crate::output::Output;
use crate::settings::Config;
use crate::spreadsheet::{Cell, Kind, SheetWriter};
use crate::supabase::lookup::OrganizationContacts;
use crate::supabase::rest::RestClient;

/// Rows asked for per request (Supabase caps an answer at 1000 by default;
/// a lower cap only means more pages).
pub const PAGE: usize = 1000;

/// The columns, in the import's layout: organisation, email, then the rest.
pub const HEADER: [&str; 5] = ["organization", "email", "created_at", "updated_at", "id"];

#[derive(Debug, Clone)]
pub struct Options {
    /// The file to write; `-` for CSV on stdout.
    pub file: PathBuf,
    /// Only the contacts of this organisation (the organisation-name rule).
    pub organization: Option<String>,
}

/// A `contacts` row as exported.
#[derive(Debug, Deserialize)]
struct Row {
    id: String,
    email: String,
    organization_name: Option<String>,
    created_at: String,
    updated_at: String,
}

/// `--json`: what was written.
#[derive(Debug, Serialize)]
struct Summary {
    file: String,
    format: &'static str,
    organization: Option<String>,
    contacts: u64,
    pages: u64,
    seconds: f64,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let to_stdout = options.file.as_os_str() == "-";
    if to_stdout && out.json {
        return Err(Error::usage(crate::t!("export-error-json-stdout")));
    }
    let kind = Kind::of(&options.file)?;
    let client = crate::supabase::user::user_client(config, out).await?;
    let organization = match &options.organization {
        None => None,
        Some(name) => Some(
            crate::supabase::lookup::organization_contacts(&client, name)
                .await?
                .ok_or_else(|| {
                    Error::failure(crate::t!(
                        "export-error-no-organisation",
                        name = format!("{name:?}")
                    ))
                })?,
        ),
    };
    let started = Instant::now();
    let mut writer = SheetWriter::create(&options.file)?;
    let sheet = writer.add_sheet("contacts", &[30.0, 34.0, 26.0, 26.0, 38.0])?;
    writer.header(sheet, &HEADER)?;
    let bar = progress(out, to_stdout);
    let (mut contacts, mut pages) = (0u64, 0u64);
    let mut next = tokio::spawn(page(client.clone(), organization.clone(), None));
    loop {
        let rows = next.await.map_err(|e| {
            Error::failure(format!("{}: {e}", crate::t!("doing-listing-contacts")))
        })??;
        pages += 1;
        let Some(last) = rows.last() else { break };
        // Fetch the next page while this one is written.
        next = tokio::spawn(page(
            client.clone(),
            organization.clone(),
            Some(last.email.clone()),
        ));
        for r in &rows {
            let org = r.organization_name.as_deref().unwrap_or("");
            writer.row(
                sheet,
                &[
                    if org.is_empty() {
                        Cell::Empty
                    } else {
                        Cell::Text(org)
                    },
                    Cell::Text(&r.email),
                    Cell::Text(&r.created_at),
                    Cell::Text(&r.updated_at),
                    Cell::Text(&r.id),
                ],
            )?;
        }
        contacts += rows.len() as u64;
        bar.set_position(contacts);
    }
    bar.finish_and_clear();
    writer.finish()?;
    let elapsed = started.elapsed().as_secs_f64();
    let summary = Summary {
        file: options.file.display().to_string(),
        format: match kind {
            Kind::Xlsx => "xlsx",
            Kind::Csv => "csv",
        },
        organization: organization.map(|o| o.name),
        contacts,
        pages,
        seconds: (elapsed * 1000.0).round() / 1000.0,
    };
    if out.json {
        return out.json(&summary);
    }
    let message = crate::t!(
        "export-done",
        count = summary.contacts,
        organization = summary
            .organization
            .as_deref()
            .map(|o| crate::t!("send-of-organization", organization = format!("{o:?}")))
            .unwrap_or_default(),
        file = if to_stdout { "stdout" } else { &summary.file },
        seconds = crate::i18n::current().seconds(elapsed)
    );
    if to_stdout {
        out.note(message);
    } else {
        out.print(message);
    }
    Ok(())
}

/// The contacts after `after` (by email), at most [`PAGE`].
async fn page(
    client: RestClient,
    organization: Option<OrganizationContacts>,
    after: Option<String>,
) -> Result<Vec<Row>> {
    if organization.as_ref().is_some_and(|o| o.is_empty()) {
        return Ok(Vec::new());
    }
    let mut query = client
        .from("contacts")
        .select("id,email,organization_name,created_at,updated_at")
        .order("email.asc")
        .limit(PAGE);
    if let Some(org) = &organization {
        query = org.filter(query);
    }
    if let Some(last) = &after {
        query = query.gt("email", last);
    }
    client
        .fetch(query, &crate::t!("doing-listing-contacts"))
        .await
}

fn progress(out: &Output, to_stdout: bool) -> ProgressBar {
    if !out.interactive() || out.json || (to_stdout && out.quiet) {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new_spinner();
    bar.set_style(crate::output::progress_style(&format!(
        "{{spinner}} {}",
        crate::t!("export-progress", count = "{count}", rate = "{rate}")
    )));
    bar.enable_steady_tick(Duration::from_millis(120));
    bar
}
