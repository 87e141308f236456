//! The PostgREST client: every request mailsync makes to `/rest/v1` goes
//! through here, with the `apikey` header and the user's access token, bounded
//! retries for transient failures, and PostgREST errors decoded into
//! messages a person can act on. It never logs headers or tokens.
//!
//! Queries are built with the `postgrest` crate's [`Builder`]; this module
//! owns the HTTP client, the retries and the error decoding.

use std::time::Duration;

use postgrest::Builder;
use reqwest::header::{HeaderMap, HeaderValue};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::error::{Error, Result};
use crate::settings::{Config, Secret};
use crate::t;

/// How many times a transient failure is tried before giving up.
const MAX_ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);
/// The longest `Retry-After` waited for; a longer one ends the command.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(30);

/// Rows asked for per page by [`RestClient::fetch_all`] (hosted Supabase's
/// default row cap).
pub const PAGE_ROWS: usize = 1000;

/// A PostgREST error body (`{"code", "message", "details", "hint"}`).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PostgrestError {
    #[serde(default)]
    pub code: Option<String>,
    #[serde(default)]
    pub message: Option<String>,
    #[serde(default)]
    pub details: Option<String>,
    #[serde(default)]
    pub hint: Option<String>,
}

impl PostgrestError {
    /// Code, details and hint as the server gave them, for `-v`.
    fn technical(&self) -> String {
        let mut parts = Vec::new();
        if let Some(code) = self.code.as_deref().filter(|c| !c.is_empty()) {
            parts.push(format!("code {code}"));
        }
        if let Some(message) = self.message.as_deref().filter(|m| !m.is_empty()) {
            parts.push(format!("message: {message}"));
        }
        if let Some(details) = self.details.as_deref().filter(|d| !d.is_empty()) {
            parts.push(format!("details: {details}"));
        }
        if let Some(hint) = self.hint.as_deref().filter(|h| !h.is_empty()) {
            parts.push(format!("hint: {hint}"));
        }
        parts.join("; ")
    }

    /// The user's object a constraint is about, from its name
    /// (`email_templates_user_name_key` → "template").
    fn object(&self) -> &'static str {
        let text = format!(
            "{} {}",
            self.message.as_deref().unwrap_or(""),
            self.details.as_deref().unwrap_or("")
        );
        let name = constraint_name(&text).unwrap_or_default();
        [
            ("email_templates", "template"),
            ("campaign_emails", "campaign-email"),
            ("campaigns", "campaign"),
            ("organizations", "organisation"),
            ("organization", "organisation"),
            ("contacts", "contact"),
            ("template", "template"),
        ]
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix) || name.contains(prefix))
        .map(|(_, object)| *object)
        .unwrap_or("record")
    }

    /// The value a unique violation is about: `Key (user_id, name)=(…, Welcome)` → `Welcome`.
    fn duplicate_value(&self) -> Option<String> {
        let details = self.details.as_deref()?;
        let values = details.split(")=(").nth(1)?;
        let values = values.split(") already exists").next()?;
        values.rsplit(", ").next().map(str::to_string)
    }
}

/// A successful answer: its status, `Content-Range` and body.
#[derive(Debug)]
pub struct RestResponse {
    pub status: StatusCode,
    pub content_range: Option<String>,
    pub body: Vec<u8>,
}

impl RestResponse {
    pub fn json<T: DeserializeOwned>(&self, what: &str) -> Result<T> {
        serde_json::from_slice(&self.body).map_err(|e| {
            Error::data(t!(
                "rest-error-unexpected-answer",
                what = what,
                reason = e.to_string()
            ))
        })
    }

    /// The total of a `Prefer: count=exact` answer (`Content-Range: 0-24/3573`).
    pub fn total_count(&self) -> Option<u64> {
        self.content_range
            .as_deref()
            .and_then(|r| r.rsplit('/').next())
            .and_then(|n| n.parse().ok())
    }
}

/// A client for one project's REST API, acting as one caller.
#[derive(Clone)]
pub struct RestClient {
    base: String,
    http: reqwest::Client,
    headers: HeaderMap,
    project: String,
    local: bool,
    auth_url: String,
}

/// The constraint named in a PostgreSQL message (`... constraint "x_key"`).
fn constraint_name(text: &str) -> Option<String> {
    let start = text.find("constraint \"")? + "constraint \"".len();
    let rest = &text[start..];
    Some(rest[..rest.find('"')?].to_string())
}

impl RestClient {
    /// A client acting as the user whose access token is given (RLS applies).
    pub fn new(config: &Config, access_token: &Secret) -> Result<Self> {
        let mut headers = HeaderMap::new();
        headers.insert(
            "apikey",
            header_value(config.anon_key()?, "SUPABASE_ANON_KEY")?,
        );
        headers.insert(
            "Authorization",
            header_value(
                &Secret::new(format!("Bearer {}", access_token.expose())),
                &t!("rest-the-access-token"),
            )?,
        );
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::failure(t!("error-http-client", reason = e.to_string())))?;
        Ok(Self {
            base: config.rest_url(),
            http,
            headers,
            project: config.project_display(),
            local: config.is_local(),
            auth_url: config.auth_url(),
        })
    }

    /// A query on a table or view: `GET/POST/PATCH/DELETE /rest/v1/{name}`.
    pub fn from(&self, name: &str) -> Builder {
        Builder::new(
            format!("{}/{name}", self.base),
            None,
            self.headers.clone(),
            self.http.clone(),
        )
    }

    /// A call of a SQL function: `POST /rest/v1/rpc/{name}` with named arguments.
    pub fn rpc(&self, name: &str, args: &serde_json::Value) -> Builder {
        Builder::new(
            format!("{}/rpc/{name}", self.base),
            None,
            self.headers.clone(),
            self.http.clone(),
        )
        .rpc(args.to_string())
    }

    /// Sends the request. A read (GET, HEAD) is retried on transient
    /// failures (connection errors, timeouts, 429, 502, 503, 504) with
    /// bounded exponential backoff. A write is retried only when it surely
    /// did not run: the connection was never made, or the server said 429 or
    /// 503 before doing anything. A gateway 502/504 or a timeout after the
    /// request was sent may hide a committed write: that is an error saying
    /// so, never a blind repeat (see [`RestClient::execute_idempotent`]).
    /// `prefer` replaces the `Prefer` header; `what` names the operation in
    /// error messages.
    pub async fn execute(
        &self,
        query: Builder,
        prefer: Option<&str>,
        what: &str,
    ) -> Result<RestResponse> {
        self.send(query, prefer, what, false).await
    }

    /// Like [`RestClient::execute`], for a request the caller knows is
    /// harmless to repeat whatever happened to the first attempt (an upsert
    /// that ignores duplicates, a resumable RPC): every transient failure is
    /// retried.
    pub async fn execute_idempotent(
        &self,
        query: Builder,
        prefer: Option<&str>,
        what: &str,
    ) -> Result<RestResponse> {
        self.send(query, prefer, what, true).await
    }

    async fn send(
        &self,
        query: Builder,
        prefer: Option<&str>,
        what: &str,
        idempotent: bool,
    ) -> Result<RestResponse> {
        let mut request = query.build().build().map_err(|e| {
            Error::failure(t!(
                "rest-error-building",
                what = what,
                reason = e.without_url().to_string()
            ))
        })?;
        // The query is form-encoded (a space is `+`, a plus `%2B`), which
        // PostgREST, and the local stack's proxy, read as a form.
        if let Some(prefer) = prefer {
            request.headers_mut().insert(
                "Prefer",
                HeaderValue::from_str(prefer)
                    .map_err(|_| Error::failure(t!("rest-error-prefer")))?,
            );
        }
        let idempotent = idempotent || matches!(*request.method(), Method::GET | Method::HEAD);
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let this_try = request
                .try_clone()
                .ok_or_else(|| Error::failure(t!("rest-error-not-retryable", what = what)))?;
            let started = std::time::Instant::now();
            let method = this_try.method().clone();
            let target = format!(
                "{}{}",
                this_try.url().path(),
                this_try
                    .url()
                    .query()
                    .map(|q| format!("?{}", q.chars().take(160).collect::<String>()))
                    .unwrap_or_default()
            );
            let sent = this_try
                .body()
                .and_then(|b| b.as_bytes())
                .map(|b| b.len())
                .unwrap_or(0);
            let outcome = self.http.execute(this_try).await;
            crate::output::trace(format!(
                "{method} {target} ({sent} bytes) → {} in {} ms{}",
                match &outcome {
                    Ok(r) => r.status().as_u16().to_string(),
                    Err(_) => "no answer".to_string(),
                },
                started.elapsed().as_millis(),
                if attempt > 1 {
                    format!(" (attempt {attempt})")
                } else {
                    String::new()
                }
            ));
            let retry_after = match outcome {
                Ok(response) if is_transient_status(response.status()) => {
                    let status = response.status();
                    if !idempotent && !is_not_processed_status(status) {
                        return Err(self.maybe_applied(
                            &t!("rest-cause-gateway", status = status.to_string()),
                            what,
                        ));
                    }
                    let wait = retry_after(&response);
                    if let Some(wait) = wait.filter(|w| *w > MAX_RETRY_AFTER) {
                        // Not waited for: say when, rather than hang.
                        return Err(Error::unreachable(t!(
                            "rest-error-retry-after",
                            what = what,
                            project = self.project.as_str(),
                            status = status.to_string(),
                            seconds = wait.as_secs().to_string()
                        ))
                        .with_hint(t!("rest-hint-retry-after")));
                    }
                    if attempt >= MAX_ATTEMPTS {
                        let body = response.bytes().await.unwrap_or_default();
                        return Err(self.decode_error(status, &body, what).await);
                    }
                    wait
                }
                Ok(response) if response.status().is_success() => {
                    let status = response.status();
                    let content_range = response
                        .headers()
                        .get("Content-Range")
                        .and_then(|v| v.to_str().ok())
                        .map(str::to_string);
                    let body = response
                        .bytes()
                        .await
                        .map_err(|e| self.transport_error(e, what))?
                        .to_vec();
                    return Ok(RestResponse {
                        status,
                        content_range,
                        body,
                    });
                }
                Ok(response) => {
                    let status = response.status();
                    let body = response.bytes().await.unwrap_or_default();
                    // The database rolled the whole request back (a deadlock
                    // with a concurrent schema change, a serialization
                    // failure): nothing of it was applied, so any request,
                    // a write too, is tried again, as PostgreSQL asks.
                    if is_rolled_back(&body) && attempt < MAX_ATTEMPTS {
                        crate::output::trace(format!("{what}: rolled back by the database"));
                        None
                    } else {
                        return Err(self.decode_error(status, &body, what).await);
                    }
                }
                // Never connected: nothing was sent, whatever the method.
                Err(e) if e.is_connect() && attempt < MAX_ATTEMPTS => None,
                Err(e) if idempotent && is_transient_error(&e) && attempt < MAX_ATTEMPTS => None,
                Err(e) if !idempotent && !e.is_connect() && is_transient_error(&e) => {
                    let cause = if e.is_timeout() {
                        t!("rest-cause-no-answer")
                    } else {
                        e.without_url().to_string()
                    };
                    return Err(self.maybe_applied(&cause, what));
                }
                Err(e) => return Err(self.transport_error(e, what)),
            };
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// Inserts one row into `table` and returns it as stored (its `columns`).
    pub async fn insert_one<T: DeserializeOwned>(
        &self,
        table: &str,
        columns: &str,
        row: &serde_json::Value,
        what: &str,
    ) -> Result<T> {
        let query = self.from(table).select(columns).insert(row.to_string());
        let rows: Vec<T> = self
            .execute(query, Some("return=representation"), what)
            .await?
            .json(what)?;
        rows.into_iter()
            .next()
            .ok_or_else(|| Error::data(t!("rest-error-no-row", what = what)))
    }

    /// A write whose fate is unknown: it was sent, and no answer says
    /// whether it committed.
    fn maybe_applied(&self, cause: &str, what: &str) -> Error {
        Error::unreachable(t!(
            "rest-error-maybe-applied",
            what = what,
            cause = cause,
            project = self.project.as_str()
        ))
        .with_hint(t!("rest-hint-maybe-applied"))
    }

    /// [`RestClient::execute`] and decode the JSON body.
    pub async fn fetch<T: DeserializeOwned>(&self, query: Builder, what: &str) -> Result<T> {
        self.execute(query, None, what).await?.json(what)
    }

    /// Every row of a read, page by page (`Range` header), until a page
    /// comes back empty. The next page starts after the rows actually
    /// received, so a project whose row cap (`max_rows`) is lower than the
    /// page asked for still yields every row. `query` must have a total
    /// order (end it with a unique column).
    pub async fn fetch_all<T: DeserializeOwned>(
        &self,
        query: Builder,
        what: &str,
    ) -> Result<Vec<T>> {
        let mut rows: Vec<T> = Vec::new();
        loop {
            let from = rows.len();
            let page: Vec<T> = self
                .fetch(query.clone().range(from, from + PAGE_ROWS - 1), what)
                .await?;
            if page.is_empty() {
                return Ok(rows);
            }
            rows.extend(page);
        }
    }

    fn transport_error(&self, e: reqwest::Error, what: &str) -> Error {
        let is_unreachable = e.is_connect() || e.is_timeout();
        let cause = if e.is_timeout() {
            t!("rest-cause-timeout")
        } else if e.is_connect() {
            t!("rest-cause-connect", project = self.project.as_str())
        } else {
            e.without_url().to_string()
        };
        let message = t!(
            "rest-error-transport",
            what = what,
            cause = cause,
            project = self.project.as_str()
        );
        if is_unreachable {
            Error::unreachable(message)
        } else {
            Error::failure(message)
        }
    }

    async fn decode_error(&self, status: StatusCode, body: &[u8], what: &str) -> Error {
        let error: PostgrestError = serde_json::from_slice(body).unwrap_or_default();
        let code = error.code.as_deref().unwrap_or("");
        let detail = error.technical();
        let detailed = |e: Error| {
            let e = match &error.code {
                Some(code) => e.with_code(code.clone()),
                None => e,
            };
            if detail.is_empty() {
                e
            } else {
                e.with_detail(detail.clone())
            }
        };
        // The gateway's refusal of the API key: 401 with a message and no
        // PostgREST code ("Invalid API key"). The session is not the problem.
        if status == StatusCode::UNAUTHORIZED && error.code.is_none() && error.message.is_some() {
            return Error::config(t!(
                "error-api-key-refused",
                what = what,
                project = self.project.to_string(),
                message = error.message.as_deref().unwrap_or("401 Unauthorized")
            ))
            .with_hint(t!("hint-api-key"));
        }
        // An RLS or privilege refusal: PostgREST answers 403 for a signed-in
        // user, some compatible servers 401; the SQLSTATE tells them apart
        // from a refused token.
        if code == "42501" {
            return detailed(Error::refused(t!("error-permission", what = what)));
        }
        if status == StatusCode::UNAUTHORIZED || code.starts_with("PGRST30") {
            let expired = error
                .message
                .as_deref()
                .is_some_and(|m| m.to_ascii_lowercase().contains("expired"));
            let cause = if expired {
                t!("error-token-expired")
            } else {
                t!("error-token-refused")
            };
            let hint = if self.local && !self.has_auth().await {
                t!("hint-local-token")
            } else {
                t!("hint-login-again")
            };
            return detailed(
                Error::config(format!("{what}: {cause} ({})", self.project)).with_hint(hint),
            );
        }
        if status == StatusCode::NOT_FOUND
            && (code == "PGRST205" || code == "42P01" || code == "PGRST202")
        {
            return detailed(
                Error::refused(format!(
                    "{what}: {}",
                    error
                        .message
                        .clone()
                        .unwrap_or_else(|| t!("rest-not-found"))
                ))
                .with_hint(t!("hint-db-apply")),
            );
        }
        if code == "23505" {
            let object = error.object();
            let value = error
                .duplicate_value()
                .map(|v| format!("{v:?}"))
                // The message's selector for "no value known".
                .unwrap_or_else(|| "none".to_string());
            return detailed(
                Error::refused(t!(
                    "error-duplicate",
                    what = what,
                    object = object,
                    value = value
                ))
                .with_hint(t!("hint-duplicate", object = object)),
            );
        }
        if code == "23503" {
            let object = error.object();
            return detailed(Error::refused(t!(
                "error-missing-reference",
                what = what,
                object = object
            )));
        }
        // A per-user quota of the project (13_limits.sql): its numbers are
        // in the details, `{"quota", "limit", "count"}`.
        if code == "MSQTA" {
            let quota: serde_json::Value = error
                .details
                .as_deref()
                .and_then(|d| serde_json::from_str(d).ok())
                .unwrap_or_default();
            let number = |key: &str| quota[key].as_i64().unwrap_or(0);
            return detailed(
                Error::refused(t!(
                    "error-quota",
                    what = what,
                    quota = quota["quota"].as_str().unwrap_or("other").to_string(),
                    limit = number("limit"),
                    count = number("count")
                ))
                .with_hint(t!("hint-quota")),
            );
        }
        // A text over one of the schema's bounds (`<table>_<column>_length`
        // or `_size` check constraints, 13_limits.sql).
        if code == "23514" {
            if let Some(name) = error.message.as_deref().and_then(constraint_name) {
                if name.ends_with("_length") || name.ends_with("_size") {
                    return detailed(
                        Error::refused(t!("error-too-long", what = what, constraint = name))
                            .with_hint(t!("hint-limits")),
                    );
                }
            }
        }
        if code == "23502" || code == "23514" || code.starts_with("22") {
            return detailed(Error::refused(t!(
                "rest-error-value",
                what = what,
                message = error
                    .message
                    .clone()
                    .unwrap_or_else(|| t!("rest-invalid-value"))
            )));
        }
        // A SQL function's own message (RAISE, P0001) is already a sentence.
        if let Some(message) = error.message.as_deref().filter(|m| !m.is_empty()) {
            return detailed(Error::refused(format!("{what}: {message}")));
        }
        detailed(Error::refused(t!(
            "rest-error-status",
            what = what,
            status = status.to_string()
        )))
    }

    /// Whether the project has an Auth server (the local stack answers 404).
    async fn has_auth(&self) -> bool {
        match self
            .http
            .get(format!("{}/health", self.auth_url))
            .timeout(Duration::from_secs(5))
            .send()
            .await
        {
            Ok(r) => r.status() != StatusCode::NOT_FOUND,
            Err(_) => true,
        }
    }
}

fn header_value(secret: &Secret, name: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(secret.expose())
        .map_err(|_| Error::config(t!("rest-error-header", name = name)))?;
    value.set_sensitive(true);
    Ok(value)
}

fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

/// Answers that mean the request was not processed: rate limited, or the
/// service unavailable before it ran anything.
fn is_not_processed_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 503)
}

/// Whether an error body says the database rolled the request back and
/// asks for it again ([`crate::postgres::ROLLED_BACK_CODES`]); PostgREST
/// runs each request in one transaction.
fn is_rolled_back(body: &[u8]) -> bool {
    use crate::postgres::ROLLED_BACK_CODES;
    serde_json::from_slice::<PostgrestError>(body)
        .ok()
        .and_then(|e| e.code)
        .is_some_and(|code| ROLLED_BACK_CODES.contains(&code.as_str()))
}

fn is_transient_error(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

/// `Retry-After`: seconds, or an HTTP date (RFC 9110 §10.2.3).
fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    let value = response.headers().get("Retry-After")?.to_str().ok()?.trim();
    parse_retry_after(value, chrono::Utc::now())
}

fn parse_retry_after(value: &str, now: chrono::DateTime<chrono::Utc>) -> Option<Duration> {
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let ahead = at.with_timezone(&chrono::Utc) - now;
    Some(ahead.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deadlocks_and_serialization_failures_are_rolled_back_others_not() {
        assert!(is_rolled_back(
            br#"{"code":"40P01","message":"deadlock detected"}"#
        ));
        assert!(is_rolled_back(
            br#"{"code":"40001","message":"could not serialize"}"#
        ));
        assert!(!is_rolled_back(
            br#"{"code":"23505","message":"duplicate key"}"#
        ));
        assert!(!is_rolled_back(br#"{"message":"deadlock detected"}"#));
        assert!(!is_rolled_back(b"<html>40P01</html>"));
    }

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = chrono::DateTime::parse_from_rfc3339("2015-10-21T07:27:55Z")
            .unwrap()
            .with_timezone(&chrono::Utc);
        assert_eq!(parse_retry_after("7", now), Some(Duration::from_secs(7)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now),
            Some(Duration::from_secs(5))
        );
        // In the past: no wait.
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}
