//! `mailsync whoami`: who mailsync acts as (the token's claims), the
//! project, the token's expiry and where the token came from. Server side:
//! none (the claims are read locally; the server checks the signature on
//! every request). Tests: `tests/it/account.rs`.

use serde::Serialize;
use serde_json::Value;

use crate::error::Result;
use crate::output::Output;
use crate::settings::Config;
use crate::supabase::session;
use crate::t;

#[derive(Serialize)]
struct WhoAmI {
    user_id: Option<String>,
    email: Option<String>,
    role: Option<String>,
    project: String,
    expires_at: Option<i64>,
    expires_in_seconds: Option<i64>,
    token_source: String,
}

pub async fn run(config: &Config, out: &Output) -> Result<()> {
    let token = crate::supabase::user::token(config, out).await?;
    let claims = crate::supabase::user::claims(token.value.expose()).unwrap_or(Value::Null);
    let text = |k: &str| claims[k].as_str().map(str::to_string);
    let expires_at = claims["exp"].as_i64();
    let me = WhoAmI {
        user_id: text("sub"),
        email: text("email"),
        role: text("role"),
        project: config.project_display(),
        expires_at,
        expires_in_seconds: expires_at.map(|e| e - session::now()),
        // An interface under --json: English whatever the run's language.
        token_source: token.source.describe(crate::i18n::Lang::En),
    };
    if out.json {
        return out.json(&me);
    }
    let mut table = out.table(["", ""]);
    let expiry = match (me.expires_at, me.expires_in_seconds) {
        (Some(_), Some(left)) if left <= 0 => t!("whoami-expired"),
        (Some(at), Some(left)) => t!(
            "whoami-expires-in",
            minutes = (left / 60).to_string(),
            at = at.to_string()
        ),
        _ => t!("whoami-unknown"),
    };
    for (k, v) in [
        (
            t!("whoami-user"),
            me.user_id.clone().unwrap_or_else(|| "?".into()),
        ),
        (t!("whoami-email"), me.email.clone().unwrap_or_default()),
        (t!("whoami-role"), me.role.clone().unwrap_or_default()),
        (t!("whoami-project"), me.project.clone()),
        (t!("whoami-token-expires"), expiry),
        (t!("whoami-token-from"), token.source.to_string()),
    ] {
        table.add_row(vec![k, v]);
    }
    out.print(table.to_string());
    Ok(())
}
