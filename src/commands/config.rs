//! `mailsync config`: each setting, masked where secret, and where it came
//! from (flag > environment > env file > default; the token may come from a
//! saved session). Server side: none. Tests: `tests/it/config.rs`,
//! `tests/it/account.rs`, and the unit test below.

use serde::Serialize;

use crate::config::Config;
use crate::error::Result;
use crate::i18n::Lang;
use crate::output::Output;
use crate::{t, t_in};

#[derive(Serialize)]
struct Entry {
    name: &'static str,
    value: Option<String>,
    source: String,
}

/// `campaigns deliver`'s settings: the SMTP URL with its password masked.
/// Sources are written in `lang` (English for `--json`).
fn delivery_entries(config: &Config, lang: Lang) -> Vec<Entry> {
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
                    source: source.describe(lang),
                },
                None => Entry {
                    name,
                    value: default.clone(),
                    source: if default.is_some() {
                        crate::config::Source::Default.describe(lang)
                    } else {
                        required.to_string()
                    },
                },
            }
        };
    let smtp_shown = config.setting(ENV_SMTP_URL).map(|(value, source)| {
        SmtpServer::parse(&value, &source)
            .map(|s| s.masked())
            .unwrap_or_else(|_| t_in!(lang, "config-smtp-url-invalid"))
    });
    vec![
        entry(
            ENV_SMTP_URL,
            smtp_shown,
            local_smtp.clone(),
            &t_in!(lang, "config-unset-for-deliver"),
        ),
        entry(
            ENV_FROM,
            None,
            local_smtp.map(|_| LOCAL_FROM.to_string()),
            &t_in!(lang, "config-unset-for-deliver"),
        ),
        entry(
            ENV_LIST_UNSUBSCRIBE,
            None,
            None,
            &t_in!(lang, "config-unset-list-unsubscribe"),
        ),
    ]
}

pub async fn run(config: &Config, out: &Output) -> Result<()> {
    // Where each value came from is an interface under --json: English.
    let lang = if out.json {
        Lang::En
    } else {
        crate::i18n::current()
    };
    let entries = entries(config, lang);
    if out.json {
        return out.json(&entries);
    }
    let mut table = out.table([
        t!("config-col-setting"),
        t!("config-col-value"),
        t!("config-col-from"),
    ]);
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

fn entries(config: &Config, lang: Lang) -> Vec<Entry> {
    let mut entries = vec![
        Entry {
            name: "SUPABASE_URL",
            value: Some(config.project_display()),
            source: config.supabase_url.source.describe(lang),
        },
        Entry {
            name: "SUPABASE_ANON_KEY",
            value: config.anon_key.as_ref().map(|k| k.value.masked_in(lang)),
            source: config
                .anon_key
                .as_ref()
                .map(|k| k.source.describe(lang))
                .unwrap_or_else(|| t_in!(lang, "config-unset-required")),
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
                .map(|u| u.source.describe(lang))
                .unwrap_or_else(|| t_in!(lang, "config-unset-for-db")),
        },
    ];
    let token = match &config.access_token {
        Some(t) => Entry {
            name: "MAILSYNC_ACCESS_TOKEN",
            value: Some(t.value.masked_in(lang)),
            source: t.source.describe(lang),
        },
        None => match crate::supabase::session::load(&config.project_display()) {
            Ok(Some((session, path))) => Entry {
                name: "MAILSYNC_ACCESS_TOKEN",
                value: Some(session.access().masked_in(lang)),
                source: crate::config::Source::SavedSession(path).describe(lang),
            },
            _ => Entry {
                name: "MAILSYNC_ACCESS_TOKEN",
                value: None,
                source: t_in!(lang, "config-unset-token"),
            },
        },
    };
    entries.push(token);
    entries.extend(delivery_entries(config, lang));
    entries
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
