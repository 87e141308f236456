//! After `db reset` / `db apply` commit: wait until the REST API serves the
//! new schema. PostgREST reloads its schema cache asynchronously when told
//! on the `pgrst` channel (the schema ends with `notify pgrst, 'reload
//! schema'`, sent at commit), on hosted Supabase as on the local stack; a
//! command run at once would otherwise meet `PGRST202`/`PGRST205` ("Could not
//! find the function ... in the schema cache").
//! Every mailsync function and relation (found by its mark) is asked for as
//! the anon key sees them: anon holds no privilege on them, so a known object
//! answers "permission denied", an unknown one `PGRST202`/`PGRST205`.
//! Tests: `tests/it/db_schema_cache.rs`.

use std::time::{Duration, Instant};

use futures_util::future::join_all;
use tokio_postgres::{Client, SimpleQueryMessage};

use crate::error::{Error, Result};
use crate::output::Output;
use crate::settings::Config;
use crate::t;

/// How long the REST API may take to reload its schema cache. A large
/// project's reload takes seconds, not minutes.
const WAIT: Duration = Duration::from_secs(60);
const PAUSE: Duration = Duration::from_millis(200);

/// Whether a REST server works on this database: a session of
/// `authenticator`, the role PostgREST logs in as on every Supabase project
/// (its `LISTEN "pgrst"` connection stays open). A database the configured
/// API does not serve (a scratch database, a branch) has none.
const SERVED: &str = "select exists (select 1 from pg_catalog.pg_stat_activity
                       where datname = current_database() and usename = 'authenticator') as served";

/// mailsync's tables, views and the functions PostgREST exposes (not trigger
/// functions, all arguments named): kind, name, argument names.
const OBJECTS: &str = "select case c.relkind when 'v' then 'view' else 'table' end as kind, c.relname::text as name, '' as args
  from pg_catalog.pg_class c
  where c.relnamespace = 'public'::regnamespace and c.relkind in ('r', 'p', 'v')
    and coalesce(pg_catalog.obj_description(c.oid, 'pg_class') like 'Managed by mailsync%', false)
union all
select 'function', p.proname::text,
       array_to_string(p.proargnames[1:p.pronargs], ',')
  from pg_catalog.pg_proc p
  where p.pronamespace = 'public'::regnamespace and p.prorettype <> 'trigger'::regtype
    and p.prokind = 'f'
    and (p.pronargs = 0 or (p.proargnames is not null
                            and array_position(p.proargnames[1:p.pronargs], '') is null))
    and coalesce(pg_catalog.obj_description(p.oid, 'pg_proc') like 'Managed by mailsync%', false)
order by 1, 2";

struct Probe {
    /// `table contacts` or `function import_contacts(rows)`, for messages.
    label: String,
    path: String,
}

fn rows(messages: &[SimpleQueryMessage]) -> Vec<&tokio_postgres::SimpleQueryRow> {
    messages
        .iter()
        .filter_map(|m| match m {
            SimpleQueryMessage::Row(row) => Some(row),
            _ => None,
        })
        .collect()
}

/// The requests that tell whether the cache knows each object: a GET that
/// selects nothing, or a GET of the function with its named arguments (a
/// read-only transaction: nothing can be written even if it ran).
fn probes(messages: &[SimpleQueryMessage]) -> Vec<Probe> {
    rows(messages)
        .into_iter()
        .filter_map(|row| {
            let name = row.get("name")?;
            let args = row.get("args").unwrap_or_default();
            let kind = row.get("kind").unwrap_or_default();
            Some(if kind != "function" {
                Probe {
                    label: format!("{kind} {name}"),
                    path: format!("{name}?select=*&limit=0"),
                }
            } else {
                let names: Vec<&str> = args.split(',').filter(|a| !a.is_empty()).collect();
                let query: Vec<String> = names.iter().map(|a| format!("{a}=")).collect();
                Probe {
                    label: format!("function {name}({})", names.join(", ")),
                    path: format!("rpc/{name}?{}", query.join("&")),
                }
            })
        })
        .collect()
}

/// What one answer says of the cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Answer {
    /// The cache knows the object (anon is refused by the database, or the
    /// call ran).
    Known,
    /// Not in the schema cache (`PGRST202`, `PGRST205`, `42883`/`42P01`
    /// from older servers), the cache being loaded (`PGRST002`), a gateway
    /// error, no answer.
    Unknown,
    /// A gateway refused the key itself (401 without a PostgREST code):
    /// nothing to wait for with it.
    KeyRefused,
}

fn answer(status: u16, body: &str) -> Answer {
    let code = serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("code").and_then(|c| c.as_str()).map(str::to_string))
        .unwrap_or_default();
    if (200..300).contains(&status) {
        return Answer::Known;
    }
    if status == 401 && code.is_empty() {
        return Answer::KeyRefused;
    }
    if code.is_empty()
        || status >= 500
        || matches!(code.as_str(), "PGRST202" | "PGRST205" | "PGRST002")
        || (status == 404 && (code == "42883" || code == "42P01"))
    {
        return Answer::Unknown;
    }
    Answer::Known
}

/// Waits until the REST API answers for every mailsync object, or fails
/// after [`WAIT`] naming what it still does not know. Does nothing when no
/// REST server works on this database or no anon key is configured.
pub async fn wait_for_rest_api(client: &Client, config: &Config, out: &Output) -> Result<()> {
    let failed = |e: tokio_postgres::Error| {
        Error::refused(t!(
            "schema-cache-error-query",
            reason = crate::postgres::describe_db_error(&e)
        ))
    };
    let served = client.simple_query(SERVED).await.map_err(failed)?;
    let served = rows(&served)
        .first()
        .is_some_and(|r| r.get("served") == Some("t"));
    if !served {
        out.debug(
            "schema cache: no REST API session (role authenticator) on this database; not waiting",
        );
        return Ok(());
    }
    let Ok(anon_key) = config.anon_key() else {
        out.debug("schema cache: no anon key configured; not waiting for the REST API");
        return Ok(());
    };
    let probes = probes(&client.simple_query(OBJECTS).await.map_err(failed)?);
    if probes.is_empty() {
        return Ok(());
    }
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| Error::failure(t!("error-http-client", reason = e.to_string())))?;
    let base = config.rest_url();
    let key = anon_key.expose().to_string();
    let started = Instant::now();
    let mut pending: Vec<&Probe> = probes.iter().collect();
    let mut rounds = 0u32;
    loop {
        rounds += 1;
        let answers = join_all(pending.iter().map(|probe| {
            let request = http
                .get(format!("{base}/{}", probe.path))
                .header("apikey", &key)
                .header("Accept", "application/json");
            async move {
                match request.send().await {
                    Ok(response) => {
                        let status = response.status().as_u16();
                        let body = response.text().await.unwrap_or_default();
                        answer(status, &body)
                    }
                    Err(_) => Answer::Unknown,
                }
            }
        }))
        .await;
        if answers.contains(&Answer::KeyRefused) {
            out.debug(format!(
                "schema cache: the REST API at {base} refuses the anon key; not waiting for it"
            ));
            return Ok(());
        }
        pending = pending
            .into_iter()
            .zip(answers)
            .filter(|(_, a)| *a != Answer::Known)
            .map(|(probe, _)| probe)
            .collect();
        if pending.is_empty() {
            out.debug(format!(
                "schema cache: the REST API at {base} answers for {} mailsync functions and tables \
                 as the anon key sees them, after {} ms ({rounds} round(s))",
                probes.len(),
                started.elapsed().as_millis()
            ));
            return Ok(());
        }
        if started.elapsed() >= WAIT {
            let missing: Vec<&str> = pending.iter().map(|p| p.label.as_str()).collect();
            return Err(Error::unreachable(t!(
                "schema-cache-error-stale",
                url = base.as_str(),
                seconds = WAIT.as_secs(),
                missing = missing.join(", ")
            ))
            .with_hint(t!("schema-cache-hint-reload")));
        }
        if rounds == 1 {
            out.debug(format!(
                "schema cache: waiting for the REST API at {base} to know {} of {} mailsync functions \
                 and tables (first: {})",
                pending.len(),
                probes.len(),
                pending[0].label
            ));
        }
        tokio::time::sleep(PAUSE).await;
    }
}

#[cfg(test)]
mod tests {
    use super::{answer, Answer};

    #[test]
    fn only_an_object_missing_from_the_cache_is_unknown() {
        let denied =
            r#"{"code":"42501","message":"permission denied for function import_contacts"}"#;
        assert_eq!(answer(401, denied), Answer::Known);
        assert_eq!(answer(403, denied), Answer::Known);
        assert_eq!(answer(200, "[]"), Answer::Known);
        assert_eq!(
            answer(400, r#"{"code":"22P02","message":"invalid input"}"#),
            Answer::Known
        );
        assert_eq!(
            answer(
                404,
                r#"{"code":"PGRST202","message":"Could not find the function public.import_contacts(rows) in the schema cache"}"#
            ),
            Answer::Unknown
        );
        assert_eq!(
            answer(
                404,
                r#"{"code":"PGRST205","message":"Could not find the table 'public.contacts' in the schema cache"}"#
            ),
            Answer::Unknown
        );
        assert_eq!(answer(503, r#"{"code":"PGRST002"}"#), Answer::Unknown);
        assert_eq!(answer(502, "<html>bad gateway</html>"), Answer::Unknown);
        assert_eq!(answer(404, "<html>not found</html>"), Answer::Unknown);
        assert_eq!(
            answer(401, r#"{"message":"Invalid API key"}"#),
            Answer::KeyRefused
        );
    }
}
