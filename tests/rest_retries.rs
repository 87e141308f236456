//! The REST client's retries (src/supabase/rest.rs): 429, 502, 503 and 504
//! are tried again, after `Retry-After` when the server gives one, and a
//! server that keeps failing ends the command after five tries with nothing
//! written. An in-test HTTP server stands in front of the local stack's
//! REST API for these tests only: it answers the scripted statuses itself
//! and passes every other request to the real stack.

mod common;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::response::Response;
use axum::Router;
use common::{json_of, stderr, Stack};

/// A failure to answer instead of the stack: status and `Retry-After`.
type Failure = (u16, Option<&'static str>);

struct Front {
    upstream: String,
    /// Failures for the next calls to `path_part`, first first.
    script: VecDeque<Failure>,
    path_part: &'static str,
    /// (when, path, status answered) for each call to `path_part`.
    seen: Vec<(Instant, u16)>,
}

type Shared = Arc<Mutex<Front>>;

async fn handle(State(front): State<Shared>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let path = parts
        .uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .unwrap_or_default();
    let (failure, upstream, watched) = {
        let mut f = front.lock().unwrap();
        let watched = path.contains(f.path_part);
        let failure = if watched { f.script.pop_front() } else { None };
        (failure, f.upstream.clone(), watched)
    };
    if let Some((status, retry_after)) = failure {
        front.lock().unwrap().seen.push((Instant::now(), status));
        let mut response = Response::builder()
            .status(status)
            .header("content-type", "text/html");
        if let Some(seconds) = retry_after {
            response = response.header("Retry-After", seconds);
        }
        return response
            .body(Body::from(format!("<html>{status}</html>")))
            .unwrap();
    }
    let body = to_bytes(body, usize::MAX).await.unwrap();
    let mut forward = reqwest::Client::new().request(
        reqwest::Method::from_bytes(parts.method.as_str().as_bytes()).unwrap(),
        format!("{upstream}{path}"),
    );
    for (name, value) in parts.headers.iter() {
        if name != "host" && name != "content-length" {
            forward = forward.header(name.as_str(), value.as_bytes());
        }
    }
    let answer = forward.body(body.to_vec()).send().await.unwrap();
    let status = answer.status().as_u16();
    if watched {
        front.lock().unwrap().seen.push((Instant::now(), status));
    }
    let mut response = Response::builder().status(status);
    for (name, value) in answer.headers().iter() {
        if name != "content-length" && name != "transfer-encoding" && name != "connection" {
            response = response.header(name.as_str(), value.as_bytes());
        }
    }
    response
        .body(Body::from(answer.bytes().await.unwrap()))
        .unwrap()
}

async fn front(stack: &Stack, path_part: &'static str, script: Vec<Failure>) -> (String, Shared) {
    let state = Arc::new(Mutex::new(Front {
        upstream: stack.url.trim_end_matches('/').to_string(),
        script: script.into(),
        path_part,
        seen: Vec::new(),
    }));
    let app = Router::new().fallback(handle).with_state(state.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (url, state)
}

async fn import_through(url: String, user: &common::User) -> std::process::Output {
    let stack = common::stack();
    let token = user.token.clone();
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.csv");
        std::fs::write(&file, "Acme,a@example.fr\nBeta,b@example.fr\n").unwrap();
        common::command_for(&url, &stack.anon_key, dir.path())
            .args(["--json", "import", file.to_str().unwrap()])
            .env("MAILSYNC_ACCESS_TOKEN", token)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

async fn contacts(user: &common::User) -> i64 {
    common::admin()
        .await
        .query_one(
            "select count(*) from public.contacts where user_id = $1",
            &[&user.id],
        )
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn each_transient_status_is_retried_after_retry_after_and_the_import_completes() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let (url, state) = front(
        &stack,
        "/rpc/import_contacts",
        vec![(429, Some("2")), (502, None), (503, None), (504, None)],
    )
    .await;
    let o = import_through(url, &user).await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(json_of(&o)["contacts_created"], 2);
    assert_eq!(contacts(&user).await, 2);
    let seen = state.lock().unwrap().seen.clone();
    let statuses: Vec<u16> = seen.iter().map(|s| s.1).collect();
    assert_eq!(statuses, [429, 502, 503, 504, 200]);
    // `Retry-After: 2` is waited for (the first backoff is 250 ms).
    let waited = seen[1].0 - seen[0].0;
    assert!(
        waited >= Duration::from_millis(1900),
        "the next try came {waited:?} after Retry-After: 2"
    );
}

#[tokio::test]
async fn a_server_that_keeps_failing_ends_the_command_after_five_tries_with_nothing_written() {
    let stack = common::ready().await;
    let user = common::new_user(&stack).await;
    let (url, state) = front(&stack, "/rpc/import_contacts", vec![(503, None); 6]).await;
    let o = import_through(url, &user).await;
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(stderr(&o).contains("503"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("<html"), "{}", stderr(&o));
    assert_eq!(state.lock().unwrap().seen.len(), 5, "five tries");
    assert_eq!(contacts(&user).await, 0);
    assert!(!stderr(&o).contains(&user.token));
}
