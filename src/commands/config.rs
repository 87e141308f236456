//! `mailsync config`: each setting, masked where secret, and where it came
//! from (flag > environment > env file > the local stack > default; the
//! token may come from a saved session). Server side: none. Tests: `tests/it/config.rs`,
//! `tests/it/account.rs`, and the unit test below.

use serde::Serialize;

use crate::error::Result;
use crate::i18n::Lang;
use crate::output::Output;
use crate::settings::{Config, Source};
use crate::{t, t_in};

#[derive(Serialize)]
struct Entry {
    name: &'static str,
    value: Option<String>,
    source: String,
}

/// `campaigns deliver`'s settings and the bounce mailbox: the URLs with
/// their passwords masked. Sources are written in `lang` (English for
/// `--json`).
fn delivery_entries(config: &Config, lang: Lang) -> Vec<Entry> {
    use crate::local_stack::{self, LOCAL_FROM};
    use crate::settings::{
        BounceMailbox, Setting, SmtpServer, ENV_BOUNCES_CA_FILE, ENV_BOUNCES_URL, ENV_FROM,
        ENV_LIST_UNSUBSCRIBE, ENV_RETURN_PATH, ENV_SMTP_CA_FILE, ENV_SMTP_URL,
        ENV_UNSUBSCRIBE_SECRET,
    };
    let d = &config.delivery;
    let given = |name: &'static str, value: String, source: &Source| Entry {
        name,
        value: Some(value),
        source: source.describe(lang),
    };
    let default = |name: &'static str, value: Option<String>, unset: String| Entry {
        name,
        source: if value.is_some() {
            Source::Default.describe(lang)
        } else {
            unset
        },
        value,
    };
    let local_smtp = config.local_api_port().map(local_stack::smtp_url);

    let smtp = match &d.smtp_url {
        Some(s) => given(
            ENV_SMTP_URL,
            SmtpServer::parse(s.value.expose(), &s.source)
                .map(|server| server.masked())
                .unwrap_or_else(|_| t_in!(lang, "config-smtp-url-invalid")),
            &s.source,
        ),
        None => default(
            ENV_SMTP_URL,
            local_smtp.clone(),
            t_in!(lang, "config-unset-for-deliver"),
        ),
    };
    let from = match &d.from {
        Some(s) => given(ENV_FROM, s.value.clone(), &s.source),
        None => default(
            ENV_FROM,
            local_smtp.as_ref().map(|_| LOCAL_FROM.to_string()),
            t_in!(lang, "config-unset-for-deliver"),
        ),
    };
    let return_path = match &d.return_path {
        Some(s) => given(ENV_RETURN_PATH, s.value.clone(), &s.source),
        // The From address, as the envelope writes it.
        None => Entry {
            name: ENV_RETURN_PATH,
            value: from.value.as_deref().map(|text| {
                text.trim()
                    .parse::<lettre::message::Mailbox>()
                    .map(|m| m.email.to_string())
                    .unwrap_or_else(|_| text.trim().to_string())
            }),
            source: t_in!(lang, "config-default-return-path"),
        },
    };
    let list_unsubscribe = match &d.list_unsubscribe {
        Some(s) => given(ENV_LIST_UNSUBSCRIBE, s.value.clone(), &s.source),
        None => default(
            ENV_LIST_UNSUBSCRIBE,
            None,
            t_in!(lang, "config-unset-list-unsubscribe"),
        ),
    };
    let unsubscribe_secret = match &d.unsubscribe_secret {
        Some(s) => given(ENV_UNSUBSCRIBE_SECRET, s.value.masked_in(lang), &s.source),
        None => default(
            ENV_UNSUBSCRIBE_SECRET,
            None,
            t_in!(lang, "config-unset-unsubscribe-secret"),
        ),
    };
    let smtp_ca_file = match &d.smtp_ca_file {
        Some(s) => given(ENV_SMTP_CA_FILE, s.value.clone(), &s.source),
        None => default(
            ENV_SMTP_CA_FILE,
            None,
            t_in!(lang, "config-unset-smtp-ca-file"),
        ),
    };
    let bounces = match &config.bounces_url {
        Some(Setting { value, source }) => given(
            ENV_BOUNCES_URL,
            BounceMailbox::parse(value.expose(), source)
                .map(|mailbox| mailbox.masked())
                .unwrap_or_else(|_| t_in!(lang, "config-bounces-url-invalid")),
            source,
        ),
        None => default(ENV_BOUNCES_URL, None, t_in!(lang, "config-unset-bounces")),
    };
    let bounces_ca_file = match &config.bounces_ca_file {
        Some(s) => given(ENV_BOUNCES_CA_FILE, s.value.clone(), &s.source),
        None => default(
            ENV_BOUNCES_CA_FILE,
            None,
            t_in!(lang, "config-unset-bounces-ca-file"),
        ),
    };
    vec![
        smtp,
        from,
        return_path,
        list_unsubscribe,
        unsubscribe_secret,
        smtp_ca_file,
        bounces,
        bounces_ca_file,
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
                .map(|u| crate::settings::mask_url(u.value.expose())),
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
        None => match config
            .session_dir()
            .and_then(|dir| crate::supabase::session::load(dir, &config.project_display()))
        {
            Ok(Some((session, path))) => Entry {
                name: "MAILSYNC_ACCESS_TOKEN",
                value: Some(session.access().masked_in(lang)),
                source: Source::SavedSession(path).describe(lang),
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
        let shown = crate::settings::mask_url(
            "postgresql://postgres:hunter2@db.x.supabase.co:5432/postgres",
        );
        assert!(!shown.contains("hunter2"));
        assert!(shown.contains("db.x.supabase.co:5432"));
    }
}
