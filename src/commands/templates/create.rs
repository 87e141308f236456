//! `mailsync templates create`: a reusable subject and content.
//! Server side: table `email_templates` (unique name per user) in
//! `sql/MASTER-DATABASE.sql`. Tests: `tests/templates.rs`.

use serde_json::json;

use crate::config::Config;
use crate::domain::{Content, Template};
use crate::error::{Error, Result};
use crate::output::Output;

#[derive(Debug, Clone)]
pub struct Options {
    pub name: String,
    pub subject: String,
    pub content: Content,
}

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    let content = options.content.read()?;
    let client = crate::supabase::user::user_client(config, out).await?;
    let name = &options.name;
    let created: Vec<Template> = client
        .execute(
            client
                .from("email_templates")
                .select("id,name,subject,content,created_at")
                .insert(
                    json!({"name": name, "subject": options.subject, "content": content})
                        .to_string(),
                ),
            Some("return=representation"),
            &format!("creating template {name:?}"),
        )
        .await?
        .json("creating the template")?;
    let template = created
        .into_iter()
        .next()
        .ok_or_else(|| Error::data("creating the template: the server returned no row"))?;
    if out.json {
        return out.json(&template);
    }
    out.print(format!("Created template {name:?}"));
    Ok(())
}
