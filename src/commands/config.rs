//! `mailsync config`: each setting, masked where secret, and where it came
//! from (flag > environment > env file > default; the token may come from a
//! saved session). Server side: none. Tests: `tests/config.rs`,
//! `tests/account.rs`, and the unit test below.

use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::output::Output;

#[derive(Serialize)]
struct Entry {
    name: &'static str,
    value: Option<String>,
    source: String,
}

pub async fn run(config: &Config, out: &Output) -> Result<()> {
    let mut entries = vec![
        Entry {
            name: "SUPABASE_URL",
            value: Some(config.project_display()),
            source: config.supabase_url.source.to_string(),
        },
        Entry {
            name: "SUPABASE_ANON_KEY",
            value: config.anon_key.as_ref().map(|k| k.value.masked()),
            source: config
                .anon_key
                .as_ref()
                .map(|k| k.source.to_string())
                .unwrap_or_else(|| "not set (required for this project)".into()),
        },
        Entry {
            name: "SUPABASE_DB_URL",
            value: Some(crate::config::mask_url(config.db_url.value.expose())),
            source: config.db_url.source.to_string(),
        },
    ];
    let token = match &config.access_token {
        Some(t) => Entry {
            name: "MAILSYNC_ACCESS_TOKEN",
            value: Some(t.value.masked()),
            source: t.source.to_string(),
        },
        None => match crate::supabase::session::load(&config.project_display()) {
            Ok(Some((session, path))) => Entry {
                name: "MAILSYNC_ACCESS_TOKEN",
                value: Some(session.access().masked()),
                source: crate::config::Source::SavedSession(path).to_string(),
            },
            _ => Entry {
                name: "MAILSYNC_ACCESS_TOKEN",
                value: None,
                source: "not set; run `mailsync login`".into(),
            },
        },
    };
    entries.push(token);
    if out.json {
        return out.json(&entries);
    }
    let mut table = out.table(["setting", "value", "from"]);
    for e in &entries {
        table.add_row(vec![
            e.name.to_string(),
            e.value.clone().unwrap_or_else(|| "—".into()),
            e.source.clone(),
        ]);
    }
    out.print(table.to_string());
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn db_url_passwords_are_hidden() {
        let shown =
            crate::config::mask_url("postgresql://postgres:hunter2@db.x.supabase.co:5432/postgres");
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("db.x.supabase.co:5432"));
    }
}
