//! `mailsync templates create`: a reusable subject and content.
//! Server side: table `email_templates` (unique name per user) in
//! `sql/MASTER-DATABASE.sql`. Tests: `tests/it/campaigns.rs`.

use serde_json::json;

use crate::domain::{Content, Template};
use crate::error::Result;
use crate::output::Output;
use crate::settings::Config;
use crate::t;

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
    let template: Template = client
        .insert_one(
            "email_templates",
            "id,name,subject,content,created_at",
            &json!({"name": name, "subject": options.subject, "content": content}),
            &t!("doing-creating-template", name = format!("{name:?}")),
        )
        .await?;
    if out.json {
        return out.json(&template);
    }
    out.print(crate::t!("template-created", name = format!("{name:?}")));
    Ok(())
}
