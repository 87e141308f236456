//! `mailsync dashboard`: the user's `dashboard_analytics` row.
//! Server side: view `dashboard_analytics` (fed by `user_daily_sent_counts`)
//! in `sql/MASTER-DATABASE.sql`. Tests: `tests/it/campaigns.rs`.

use crate::domain::DashboardAnalytics;
use crate::error::Result;
use crate::output::Output;
use crate::settings::Config;
use crate::t;

pub async fn run(config: &Config, out: &Output) -> Result<()> {
    let client = crate::supabase::user::user_client(config, out).await?;
    let rows: Vec<DashboardAnalytics> = client
        .fetch(
            client.from("dashboard_analytics").select("*"),
            &t!("doing-reading-dashboard"),
        )
        .await?;
    let row = rows.into_iter().next().unwrap_or_default();
    if out.json {
        return out.json(&row);
    }
    let lang = crate::i18n::current();
    let mut table = out.table(["", ""]);
    for (label, value) in [
        (t!("dashboard-contacts"), row.total_contacts),
        (t!("dashboard-organisations"), row.total_organizations),
        (t!("dashboard-active-campaigns"), row.active_campaigns),
        (t!("dashboard-sent-today"), row.emails_sent_today),
    ] {
        table.add_row(vec![label, lang.count(value)]);
    }
    out.print(table.to_string());
    Ok(())
}
