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
use reqwest::StatusCode;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::config::{Config, Secret};
use crate::error::{Error, Result};

/// How many times a transient failure is tried before giving up.
const MAX_ATTEMPTS: u32 = 5;
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
const MAX_BACKOFF: Duration = Duration::from_secs(4);

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
    fn describe(&self) -> String {
        let mut text = self
            .message
            .clone()
            .unwrap_or_else(|| "request failed".into());
        if let Some(code) = &self.code {
            text = format!("{text} (code {code})");
        }
        if let Some(details) = self.details.as_deref().filter(|d| !d.is_empty()) {
            text.push_str(&format!("; detail: {details}"));
        }
        if let Some(hint) = self.hint.as_deref().filter(|h| !h.is_empty()) {
            text.push_str(&format!("; hint: {hint}"));
        }
        text
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
            Error::data(format!(
                "{what}: the server's answer is not what mailsync expects: {e}"
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
                "the access token",
            )?,
        );
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .timeout(Duration::from_secs(120))
            .pool_idle_timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| Error::failure(format!("creating the HTTP client: {e}")))?;
        Ok(Self {
            base: config.rest_url(),
            http,
            headers,
            project: config.project_display(),
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

    /// Sends the request, retrying transient failures (connection errors,
    /// 429, 502, 503, 504) with bounded exponential backoff. `prefer` replaces
    /// the `Prefer` header. `what` names the operation in error messages.
    pub async fn execute(
        &self,
        query: Builder,
        prefer: Option<&str>,
        what: &str,
    ) -> Result<RestResponse> {
        let mut request = query.build().build().map_err(|e| {
            Error::failure(format!("{what}: building the request: {}", e.without_url()))
        })?;
        // The query is form-encoded, where a space becomes `+` (a real `+`
        // is `%2B`). PostgREST reads `+` as a space, some compatible servers
        // read it literally; `%20` means a space to both.
        if let Some(query) = request.url().query().filter(|q| q.contains('+')) {
            let query = query.replace('+', "%20");
            request.url_mut().set_query(Some(&query));
        }
        if let Some(prefer) = prefer {
            request.headers_mut().insert(
                "Prefer",
                HeaderValue::from_str(prefer)
                    .map_err(|_| Error::failure("invalid Prefer header"))?,
            );
        }
        let mut backoff = FIRST_BACKOFF;
        let mut attempt = 1;
        loop {
            let this_try = request
                .try_clone()
                .ok_or_else(|| Error::failure(format!("{what}: the request cannot be retried")))?;
            let outcome = self.http.execute(this_try).await;
            let retry_after = match outcome {
                Ok(response) if is_transient_status(response.status()) => {
                    let wait = retry_after(&response);
                    if attempt >= MAX_ATTEMPTS {
                        return Err(self.decode_error(response, what).await);
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
                Ok(response) => return Err(self.decode_error(response, what).await),
                Err(e) if is_transient_error(&e) && attempt < MAX_ATTEMPTS => None,
                Err(e) => return Err(self.transport_error(e, what)),
            };
            tokio::time::sleep(retry_after.unwrap_or(backoff)).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
            attempt += 1;
        }
    }

    /// [`RestClient::execute`] and decode the JSON body.
    pub async fn fetch<T: DeserializeOwned>(&self, query: Builder, what: &str) -> Result<T> {
        self.execute(query, None, what).await?.json(what)
    }

    fn transport_error(&self, e: reqwest::Error, what: &str) -> Error {
        let is_unreachable = e.is_connect() || e.is_timeout();
        let cause = if e.is_timeout() {
            "the request timed out".to_string()
        } else if e.is_connect() {
            format!("cannot connect to {}", self.project)
        } else {
            e.without_url().to_string()
        };
        let message = format!("{what}: {cause} (REST API at {}/rest/v1)", self.project);
        if is_unreachable {
            Error::unreachable(message)
        } else {
            Error::failure(message)
        }
    }

    async fn decode_error(&self, response: reqwest::Response, what: &str) -> Error {
        let status = response.status();
        let body = response.bytes().await.unwrap_or_default();
        let error: PostgrestError = serde_json::from_slice(&body).unwrap_or_default();
        let code = error.code.as_deref().unwrap_or("");
        // An RLS or privilege refusal: PostgREST answers 403 for a signed-in
        // user, some compatible servers 401; the SQLSTATE tells them apart
        // from a refused token.
        if code == "42501" {
            return Error::refused(format!("{what}: permission denied: {}", error.describe()));
        }
        if status == StatusCode::UNAUTHORIZED || code.starts_with("PGRST30") {
            return Error::config(format!(
                "{what}: {} refused the access token ({}); your session expired or the token is invalid: run `mailsync login` or set MAILSYNC_ACCESS_TOKEN",
                self.project,
                error.message.as_deref().unwrap_or("401 Unauthorized")
            ));
        }
        if status == StatusCode::NOT_FOUND
            && (code == "PGRST205" || code == "42P01" || code == "PGRST202")
        {
            return Error::refused(format!(
                "{what}: {} (is the mailsync schema applied? run `mailsync db apply`)",
                error.describe()
            ));
        }
        if error.message.is_none() {
            return Error::refused(format!("{what}: the REST API answered {status}"));
        }
        Error::refused(format!("{what}: {}", error.describe()))
    }
}

fn header_value(secret: &Secret, name: &str) -> Result<HeaderValue> {
    let mut value = HeaderValue::from_str(secret.expose()).map_err(|_| {
        Error::config(format!(
            "{name} contains characters not allowed in an HTTP header"
        ))
    })?;
    value.set_sensitive(true);
    Ok(value)
}

fn is_transient_status(status: StatusCode) -> bool {
    matches!(status.as_u16(), 429 | 502 | 503 | 504)
}

fn is_transient_error(e: &reqwest::Error) -> bool {
    e.is_connect() || e.is_timeout() || e.is_request() || e.is_body()
}

fn retry_after(response: &reqwest::Response) -> Option<Duration> {
    response
        .headers()
        .get("Retry-After")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .map(|s| Duration::from_secs(s.min(30)))
}
