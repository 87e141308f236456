//! A gateway in front of the stack's API, as hosted Supabase has one: it
//! checks the `apikey` header (401 `{"message":"Invalid API key"}` with no
//! PostgREST code, as the real gateway answers), forwards every request to the
//! stack, and plays scripted faults on the requests whose path contains a
//! given part:
//! - [`Fault::Before`]: the gateway answers itself (429 or 503 with
//!   `Retry-After`, 502, 504, an HTML page); the stack never sees the request;
//! - [`Fault::After`]: the request is forwarded and committed, then the
//!   stack's answer is replaced by a gateway error (502, 504);
//! - [`Fault::Drop`]: the request is forwarded and committed, then the
//!   connection is closed without an answer.
//!
//! It speaks HTTP/1.1 over a plain TCP socket (keep-alive, `Content-Length`
//! bodies, which is what mailsync sends), so that "no answer at all" is a
//! real closed connection.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What the gateway does to one request instead of passing its answer on.
#[derive(Debug, Clone)]
pub enum Fault {
    /// The gateway answers this status (and `Retry-After`, if given) with an
    /// HTML page; the request is not forwarded.
    Before(u16, Option<String>),
    /// Forwarded; the stack's answer is replaced by this status.
    After(u16),
    /// Forwarded; the connection is closed instead of answering.
    Drop,
}

/// One request the gateway saw on a watched path.
#[derive(Debug, Clone)]
pub struct Seen {
    pub at: Instant,
    pub method: String,
    pub path: String,
    /// Whether the stack got it.
    pub forwarded: bool,
    /// The status the client got (`None`: the connection was dropped).
    pub answered: Option<u16>,
    /// The request's `Authorization` header, if any.
    pub authorization: Option<String>,
}

struct State {
    upstream: String,
    /// Where `/auth/v1` goes (an in-test Auth server), if anywhere.
    auth: Option<String>,
    anon_key: String,
    /// (path part, faults for its next requests, first first)
    faults: Vec<(String, VecDeque<Fault>)>,
    /// Requests on a path that has (or had) faults scripted.
    seen: Vec<Seen>,
}

/// The gateway's address and its record of requests.
#[derive(Clone)]
pub struct Gateway {
    pub url: String,
    state: Arc<Mutex<State>>,
}

impl Gateway {
    /// A gateway in front of `upstream` (the stack's URL) that accepts only
    /// `anon_key`. Runs on the test's runtime until the test ends.
    pub async fn start(upstream: &str, anon_key: &str) -> Gateway {
        Self::start_with_auth(upstream, anon_key, None).await
    }

    /// [`Gateway::start`], with `/auth/v1` passed to `auth` (the URL of an
    /// in-test Auth server), as the project's one address serves both.
    pub async fn start_with_auth(upstream: &str, anon_key: &str, auth: Option<&str>) -> Gateway {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
        let state = Arc::new(Mutex::new(State {
            upstream: upstream.trim_end_matches('/').to_string(),
            auth: auth.map(|a| a.trim_end_matches('/').to_string()),
            anon_key: anon_key.to_string(),
            faults: Vec::new(),
            seen: Vec::new(),
        }));
        let shared = state.clone();
        tokio::spawn(async move {
            loop {
                let Ok((socket, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(serve(socket, shared.clone()));
            }
        });
        Gateway { url, state }
    }

    /// The next requests whose path contains `path_part` get these faults,
    /// in order; later ones pass. With no faults, the requests are only
    /// recorded (see [`Gateway::seen`]).
    pub fn fail(&self, path_part: &str, faults: impl IntoIterator<Item = Fault>) {
        self.state
            .lock()
            .unwrap()
            .faults
            .push((path_part.to_string(), faults.into_iter().collect()));
    }

    /// The requests seen on watched paths containing `path_part`.
    pub fn seen(&self, path_part: &str) -> Vec<Seen> {
        self.state
            .lock()
            .unwrap()
            .seen
            .iter()
            .filter(|s| s.path.contains(path_part))
            .cloned()
            .collect()
    }
}

struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one request; `None` when the client closed the connection.
async fn read_request(socket: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Request> {
    let head_end = loop {
        if let Some(i) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break i;
        }
        let mut chunk = [0u8; 8192];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_string();
    let path = request_line.next()?.to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    assert!(
        !headers
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("transfer-encoding")),
        "the test gateway reads Content-Length bodies only"
    );
    let body_start = head_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 65536];
        let n = socket.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

async fn write_response(
    socket: &mut TcpStream,
    status: u16,
    headers: &[(String, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let reason = reqwest::StatusCode::from_u16(status)
        .ok()
        .and_then(|s| s.canonical_reason())
        .unwrap_or("");
    let mut head = format!("HTTP/1.1 {status} {reason}\r\n");
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str(&format!("content-length: {}\r\n\r\n", body.len()));
    socket.write_all(head.as_bytes()).await?;
    socket.write_all(body).await?;
    socket.flush().await
}

async fn serve(mut socket: TcpStream, state: Arc<Mutex<State>>) {
    let http = reqwest::Client::new();
    let mut buffer = Vec::new();
    while let Some(request) = read_request(&mut socket, &mut buffer).await {
        let (fault, watched, upstream, key) = {
            let mut s = state.lock().unwrap();
            let mut fault = None;
            let mut watched = false;
            for (part, faults) in s.faults.iter_mut() {
                if request.path.contains(part.as_str()) {
                    watched = true;
                    if fault.is_none() {
                        fault = faults.pop_front();
                    }
                }
            }
            let upstream = match &s.auth {
                Some(auth) if request.path.starts_with("/auth/v1/") => auth.clone(),
                _ => s.upstream.clone(),
            };
            (fault, watched, upstream, s.anon_key.clone())
        };
        let record = |forwarded: bool, answered: Option<u16>| {
            if watched {
                state.lock().unwrap().seen.push(Seen {
                    at: Instant::now(),
                    method: request.method.clone(),
                    path: request.path.clone(),
                    forwarded,
                    answered,
                    authorization: request.header("authorization").map(str::to_string),
                });
            }
        };
        if request.header("apikey") != Some(key.as_str()) {
            record(false, Some(401));
            let body = br#"{"message":"Invalid API key","hint":"Double check your Supabase `anon` or `service_role` API key."}"#;
            let json = [("content-type".to_string(), "application/json".to_string())];
            if write_response(&mut socket, 401, &json, body).await.is_err() {
                return;
            }
            continue;
        }
        if let Some(Fault::Before(status, retry_after)) = &fault {
            record(false, Some(*status));
            let mut headers = vec![("content-type".to_string(), "text/html".to_string())];
            if let Some(seconds) = retry_after {
                headers.push(("retry-after".to_string(), seconds.clone()));
            }
            let page = format!("<html><body><h1>{status}</h1></body></html>");
            if write_response(&mut socket, *status, &headers, page.as_bytes())
                .await
                .is_err()
            {
                return;
            }
            continue;
        }
        let mut forward = http.request(
            reqwest::Method::from_bytes(request.method.as_bytes()).unwrap(),
            format!("{upstream}{}", request.path),
        );
        for (k, v) in &request.headers {
            let lower = k.to_ascii_lowercase();
            if !matches!(lower.as_str(), "host" | "content-length" | "connection") {
                forward = forward.header(k.as_str(), v.as_str());
            }
        }
        let answer = forward
            .body(request.body.clone())
            .send()
            .await
            .expect("the gateway reaches the stack");
        let status = answer.status().as_u16();
        let headers: Vec<(String, String)> = answer
            .headers()
            .iter()
            .filter(|(k, _)| {
                !matches!(
                    k.as_str(),
                    "content-length" | "transfer-encoding" | "connection"
                )
            })
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_string()))
            .collect();
        let body = answer.bytes().await.unwrap_or_default();
        match fault {
            Some(Fault::Drop) => {
                record(true, None);
                return;
            }
            Some(Fault::After(gateway_status)) => {
                record(true, Some(gateway_status));
                let page = format!("<html><body><h1>{gateway_status}</h1></body></html>");
                let html = [("content-type".to_string(), "text/html".to_string())];
                if write_response(&mut socket, gateway_status, &html, page.as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
            _ => {
                record(true, Some(status));
                if write_response(&mut socket, status, &headers, &body)
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
