//! `mailsync campaigns create`: a campaign in status `draft`, its content
//! inline, from a file or from a template.
//! Server side: table `email_campaigns` (and `email_templates` for
//! `--template`) in `sql/MASTER-DATABASE.sql`, through the REST API under RLS.
//! Idempotent: the id is generated here and a repeated insert is ignored.
//! Tests: `tests/it/campaigns.rs`, `tests/it/hosted_client.rs`.

use serde_json::json;

use crate::domain::{Campaign, Content, Template, CAMPAIGN_COLUMNS};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::settings::Config;
use crate::t;

/// Where a campaign's content comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Given(Content),
    /// The content (and the subject, unless given) of this template.
    Template(String),
}

#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    pub subject: Option<String>,
    pub source: Source,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let client = crate::supabase::user::user_client(config, out).await?;
    let (subject, content) = match &options.source {
        Source::Given(content) => (options.subject.clone(), content.read()?),
        Source::Template(template) => {
            let found: Vec<Template> = client
                .fetch(
                    client
                        .from("email_templates")
                        .select("id,name,subject,content,created_at")
                        .eq("name", template),
                    &t!("doing-reading-template"),
                )
                .await?;
            let t = found.into_iter().next().ok_or_else(|| {
                Error::failure(t!(
                    "campaign-error-no-template",
                    name = format!("{template:?}")
                ))
                .with_hint(t!("hint-templates-list"))
            })?;
            (
                options.subject.clone().or(Some(t.subject)),
                t.content.unwrap_or_default(),
            )
        }
    };
    let subject = subject.ok_or_else(|| Error::usage(t!("campaign-error-subject")))?;
    // The id is chosen here and the insert ignores a duplicate of it: when
    // an attempt's answer is lost (a gateway 502/504, a timeout), sending it
    // again cannot create a second campaign, and the row is read back by id.
    let id = uuid::Uuid::new_v4().to_string();
    let body = json!({"id": id, "name": options.name, "subject": subject, "content": content});
    let created: Vec<Campaign> = client
        .execute_idempotent(
            client
                .from("email_campaigns")
                .select(CAMPAIGN_COLUMNS)
                .on_conflict("id")
                .insert(body.to_string()),
            Some("return=representation,resolution=ignore-duplicates"),
            &t!("doing-creating-campaign"),
        )
        .await?
        .json(&t!("doing-creating-campaign"))?;
    let campaign = match created.into_iter().next() {
        Some(campaign) => campaign,
        // An earlier attempt committed: the insert was ignored.
        None => client
            .fetch::<Vec<Campaign>>(
                client
                    .from("email_campaigns")
                    .select(CAMPAIGN_COLUMNS)
                    .eq("id", &id),
                &t!("doing-reading-created-campaign"),
            )
            .await?
            .into_iter()
            .next()
            .ok_or_else(|| {
                Error::data(t!(
                    "rest-error-no-row",
                    what = t!("doing-creating-campaign")
                ))
            })?,
    };
    if out.json {
        return out.json(&campaign);
    }
    out.print(crate::t!(
        "campaign-created",
        name = format!("{:?}", campaign.name),
        id = campaign.id.as_str(),
        status = campaign.status.to_string()
    ));
    out.print(crate::t!("campaign-send-next", id = campaign.id.as_str()));
    Ok(())
}
