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

/// `campaigns deliver`'s settings: the SMTP URL with its password masked.
fn delivery_entries(config: &Config) -> Vec<Entry> {
    use crate::smtp::{SmtpServer, ENV_FROM, ENV_LIST_UNSUBSCRIBE, ENV_SMTP_URL, LOCAL_FROM};
    let local_smtp = config
        .is_local()
        .then(|| config.supabase_url.value.port_or_known_default())
        .flatten()
        .map(|api| {
            format!(
                "smtp://127.0.0.1:{}",
                api.saturating_add(crate::smtp::LOCAL_SMTP_PORT_OFFSET)
            )
        });
    let entry =
        |name: &'static str, shown: Option<String>, default: Option<String>, required: &str| {
            match config.setting(name) {
                Some((value, source)) => Entry {
                    name,
                    value: Some(shown.unwrap_or(value)),
                    source: source.to_string(),
                },
                None => Entry {
                    name,
                    value: default.clone(),
                    source: if default.is_some() {
                        crate::config::Source::Default.to_string()
                    } else {
                        required.to_string()
                    },
                },
            }
        };
    let smtp_shown = config.setting(ENV_SMTP_URL).map(|(value, source)| {
        SmtpServer::parse(&value, &source)
            .map(|s| s.masked())
            .unwrap_or_else(|_| "****** (not a valid smtp:// or smtps:// URL)".into())
    });
    vec![
        entry(
            ENV_SMTP_URL,
            smtp_shown,
            local_smtp.clone(),
            "not set (required by campaigns deliver)",
        ),
        entry(
            ENV_FROM,
            None,
            local_smtp.map(|_| LOCAL_FROM.to_string()),
            "not set (required by campaigns deliver)",
        ),
        entry(
            ENV_LIST_UNSUBSCRIBE,
            None,
            None,
            "not set (no List-Unsubscribe header)",
        ),
    ]
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
            value: config
                .db_url
                .as_ref()
                .map(|u| crate::config::mask_url(u.value.expose())),
            source: config
                .db_url
                .as_ref()
                .map(|u| u.source.to_string())
                .unwrap_or_else(|| "not set (required by the db commands for this project)".into()),
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
    entries.extend(delivery_entries(config));
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
