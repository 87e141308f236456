//! `mailsync templates create | list`: reusable subjects and contents.

use serde_json::{json, Value};

use crate::campaigns::Content;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::output::Output;

pub async fn create(
    name: &str,
    subject: &str,
    content: &Content,
    config: &Config,
    out: &Output,
) -> Result<()> {
    let content = match content {
        Content::Text(text) => text.clone(),
        Content::File(path) => crate::campaigns::read_content(path)?,
        Content::Template(_) => return Err(Error::usage("a template cannot come from a template")),
    };
    let client = crate::auth::user_client(config, out).await?;
    let created: Vec<Value> = client
        .execute(
            client
                .from("email_templates")
                .insert(json!({"name": name, "subject": subject, "content": content}).to_string()),
            Some("return=representation"),
            &format!("creating template {name:?}"),
        )
        .await?
        .json("creating the template")?;
    let row = created.into_iter().next().unwrap_or(Value::Null);
    if out.json {
        return out.json(&row);
    }
    out.print(format!("Created template {name:?}"));
    Ok(())
}

pub async fn list(config: &Config, out: &Output) -> Result<()> {
    let client = crate::auth::user_client(config, out).await?;
    let rows: Vec<Value> = client
        .fetch(
            client
                .from("email_templates")
                .select("id,name,subject,created_at")
                .order("name.asc"),
            "listing templates",
        )
        .await?;
    if out.json {
        return out.json(&rows);
    }
    let mut table = out.table(["name", "subject", "created"]);
    for r in &rows {
        table.add_row(vec![
            r["name"].as_str().unwrap_or("").to_string(),
            r["subject"].as_str().unwrap_or("").to_string(),
            r["created_at"]
                .as_str()
                .unwrap_or("")
                .chars()
                .take(16)
                .collect::<String>()
                .replace('T', " "),
        ]);
    }
    out.print(table.to_string());
    out.print(format!("{} template(s)", rows.len()));
    Ok(())
}
