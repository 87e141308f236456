//! `mailsync campaigns create | list | send` and `mailsync dashboard`: the
//! campaign workflow, through the REST API as the signed-in user.

use std::io::{BufRead, IsTerminal, Write};
use std::path::PathBuf;

use serde_json::{json, Value};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::rest::RestClient;
use crate::watch::data::CampaignRow;

/// Where a campaign's content comes from.
#[derive(Debug, Clone)]
pub enum Content {
    Text(String),
    File(PathBuf),
    Template(String),
}

pub async fn create(
    name: &str,
    subject: Option<&str>,
    content: &Content,
    config: &Config,
    out: &Output,
) -> Result<()> {
    let client = crate::auth::user_client(config, out).await?;
    let (subject, content) = match content {
        Content::Text(text) => (subject.map(str::to_string), text.clone()),
        Content::File(path) => (subject.map(str::to_string), read_content(path)?),
        Content::Template(template) => {
            let found: Vec<Value> = client
                .fetch(
                    client
                        .from("email_templates")
                        .select("name,subject,content")
                        .eq("name", template),
                    "reading the template",
                )
                .await?;
            let t = found.into_iter().next().ok_or_else(|| {
                Error::failure(format!(
                    "no template named {template:?} (mailsync templates list shows yours)"
                ))
            })?;
            (
                subject
                    .map(str::to_string)
                    .or_else(|| t["subject"].as_str().map(str::to_string)),
                t["content"].as_str().unwrap_or_default().to_string(),
            )
        }
    };
    let subject = subject.ok_or_else(|| Error::usage("--subject is required"))?;
    let created: Vec<Value> = client
        .execute(
            client
                .from("email_campaigns")
                .insert(json!({"name": name, "subject": subject, "content": content}).to_string()),
            Some("return=representation"),
            "creating the campaign",
        )
        .await?
        .json("creating the campaign")?;
    let row = created.into_iter().next().unwrap_or(Value::Null);
    if out.json {
        return out.json(&row);
    }
    out.print(format!(
        "Created campaign {:?} ({}), status {}",
        row["name"].as_str().unwrap_or(name),
        row["id"].as_str().unwrap_or("?"),
        row["status"].as_str().unwrap_or("draft")
    ));
    out.print(format!(
        "Send it with: mailsync campaigns send {}",
        row["id"].as_str().unwrap_or(name)
    ));
    Ok(())
}

pub(crate) fn read_content(path: &PathBuf) -> Result<String> {
    std::fs::read_to_string(path)
        .map_err(|e| Error::failure(format!("{}: cannot read the content: {e}", path.display())))
}

pub async fn list(status: Option<&str>, config: &Config, out: &Output) -> Result<()> {
    let client = crate::auth::user_client(config, out).await?;
    let mut query = client
        .from("campaign_analytics")
        .select("*")
        .order("created_at.desc");
    if let Some(status) = status {
        query = query.eq("campaign_status", status);
    }
    let rows: Vec<Value> = client.fetch(query, "listing campaigns").await?;
    if out.json {
        return out.json(&rows);
    }
    let mut table = out.table([
        "name",
        "status",
        "created",
        "emails",
        "sent",
        "delivered",
        "failed",
        "bounced",
        "success",
    ]);
    for row in &rows {
        let c: CampaignRow = serde_json::from_value(row.clone()).unwrap_or_default();
        table.add_row(vec![
            c.campaign_name.clone(),
            c.campaign_status.clone(),
            row["created_at"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(16)
                .collect::<String>()
                .replace('T', " "),
            (c.total_emails as u64).to_string(),
            (c.sent_count as u64 + c.delivered_count as u64).to_string(),
            (c.delivered_count as u64).to_string(),
            (c.failed_count as u64).to_string(),
            (c.bounced_count as u64).to_string(),
            format!("{:.2}%", c.success_rate),
        ]);
    }
    out.print(table.to_string());
    out.print(format!("{} campaign(s)", rows.len()));
    Ok(())
}

/// A campaign named by id or by (unique) name.
async fn resolve(client: &RestClient, campaign: &str) -> Result<Value> {
    let by_id = uuid::Uuid::parse_str(campaign).is_ok();
    let query = client
        .from("email_campaigns")
        .select("id,name,status,created_at")
        .eq(if by_id { "id" } else { "name" }, campaign)
        .order("created_at.desc");
    let found: Vec<Value> = client.fetch(query, "finding the campaign").await?;
    match found.len() {
        0 => Err(Error::failure(format!(
            "no campaign {campaign:?} (mailsync campaigns list shows yours)"
        ))),
        1 => Ok(found.into_iter().next().unwrap_or(Value::Null)),
        n => Err(Error::usage(format!(
            "{n} campaigns are named {campaign:?}; name one by id: {}",
            found
                .iter()
                .map(|c| format!(
                    "{} ({}, {})",
                    c["id"].as_str().unwrap_or("?"),
                    c["status"].as_str().unwrap_or("?"),
                    c["created_at"]
                        .as_str()
                        .unwrap_or("?")
                        .chars()
                        .take(16)
                        .collect::<String>()
                ))
                .collect::<Vec<_>>()
                .join(", ")
        ))),
    }
}

pub async fn send(
    campaign: &str,
    organization: Option<&str>,
    yes: bool,
    config: &Config,
    out: &Output,
) -> Result<()> {
    let client = crate::auth::user_client(config, out).await?;
    let target = resolve(&client, campaign).await?;
    let id = target["id"].as_str().unwrap_or_default().to_string();
    let name = target["name"].as_str().unwrap_or(campaign).to_string();
    let status = target["status"].as_str().unwrap_or("");
    if status != "draft" && status != "scheduled" {
        return Err(Error::failure(format!(
            "campaign {name:?} is already {status}: nothing was queued (create a new campaign to send again)"
        )));
    }
    if !yes {
        if !std::io::stdin().is_terminal() || !std::io::stderr().is_terminal() {
            return Err(Error::usage(format!(
                "refusing to send {name:?} without confirmation: no terminal to ask on; pass --yes (nothing was queued)"
            )));
        }
        let recipients = count_recipients(&client, organization).await?;
        eprint!(
            "Queue campaign {name:?} to {recipients} recipient(s){}? [y/N] ",
            organization
                .map(|o| format!(" of {o:?}"))
                .unwrap_or_default()
        );
        let _ = std::io::stderr().flush();
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        if !matches!(answer.trim().to_ascii_lowercase().as_str(), "y" | "yes") {
            return Err(Error::failure("not sent; nothing was queued"));
        }
    }
    let mut args = json!({ "campaign": id });
    if let Some(org) = organization {
        args["organization"] = json!(org);
    }
    let result: Value = client
        .fetch(
            client.rpc("send_campaign", &args),
            &format!("sending campaign {name:?}"),
        )
        .await?;
    if out.json {
        return out.json(&result);
    }
    out.print(format!(
        "Campaign {name:?} is sending: {} email(s) queued{}",
        result["queued"],
        result["organization"]
            .as_str()
            .map(|o| format!(" for {o:?}"))
            .unwrap_or_default()
    ));
    out.print("Follow it with: mailsync campaigns watch --until-done");
    Ok(())
}

async fn count_recipients(client: &RestClient, organization: Option<&str>) -> Result<u64> {
    let mut query = client.from("contacts").select("id").limit(1);
    if let Some(org) = organization {
        query = query.ilike("organization_name", org.replace(['*', '%'], ""));
    }
    let response = client
        .execute(query, Some("count=exact"), "counting recipients")
        .await?;
    Ok(response.total_count().unwrap_or(0))
}

pub async fn dashboard(config: &Config, out: &Output) -> Result<()> {
    let client = crate::auth::user_client(config, out).await?;
    let rows: Vec<Value> = client
        .fetch(
            client.from("dashboard_analytics").select("*"),
            "reading dashboard_analytics",
        )
        .await?;
    let row = rows.into_iter().next().unwrap_or(Value::Null);
    if out.json {
        return out.json(&row);
    }
    let mut table = out.table(["", ""]);
    for (label, key) in [
        ("contacts", "total_contacts"),
        ("organisations", "total_organizations"),
        ("active campaigns", "active_campaigns"),
        ("emails sent today", "emails_sent_today"),
    ] {
        table.add_row(vec![label.to_string(), row[key].to_string()]);
    }
    out.print(table.to_string());
    Ok(())
}
