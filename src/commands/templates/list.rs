//! `mailsync templates list`: the user's templates by name.
//! Server side: table `email_templates` in `sql/MASTER-DATABASE.sql`.
//! Tests: `tests/it/campaigns.rs`.

use crate::domain::Template;
use crate::error::Result;
use crate::output::{timestamp_cell, Output};
use crate::settings::Config;
use crate::t;

pub async fn run(config: &Config, out: &Output) -> Result<()> {
    let client = crate::supabase::user::user_client(config, out).await?;
    let rows: Vec<Template> = client
        .fetch_all(
            client
                .from("email_templates")
                .select("id,name,subject,created_at")
                .order("name.asc,id.asc"),
            &t!("doing-listing-templates"),
        )
        .await?;
    if out.json {
        return out.json(&rows);
    }
    let mut table = out.table([
        crate::t!("col-name"),
        crate::t!("col-subject"),
        crate::t!("col-created"),
    ]);
    for t in &rows {
        table.add_row(vec![
            t.name.clone(),
            t.subject.clone(),
            timestamp_cell(&t.created_at),
        ]);
    }
    out.print(table.to_string());
    out.print(crate::t!("templates-count", count = rows.len()));
    Ok(())
}
