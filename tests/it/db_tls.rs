//! Connections that cannot be intercepted: `mailsync db verify` against fake
//! database servers on loopback, reached under a non-local host name (the
//! name is what TLS checks; `hostaddr=127.0.0.1` is only where the bytes go).
//! One server offers no TLS, one offers TLS with a self-signed certificate;
//! each records every byte it receives and asks for the password in clear
//! text if the client gets that far. No stack needed.

use crate::common;

use std::process::Output;
use std::sync::{Arc, Mutex};

use common::stderr;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpListener;

const PASSWORD: &str = "hunter2-not-for-strangers";
const REMOTE_NAME: &str = "db.mailsync-test.example";

#[derive(Clone, Copy)]
enum Fake {
    /// Answers the SSLRequest with 'N'.
    NoTls,
    /// Answers 'S' and does TLS with a self-signed certificate for REMOTE_NAME.
    SelfSigned,
}

struct Server {
    port: u16,
    /// Everything the client sent after the SSLRequest (decrypted under TLS).
    received: Arc<Mutex<Vec<u8>>>,
    cert_pem: String,
}

async fn start(kind: Fake) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let received = Arc::new(Mutex::new(Vec::new()));
    let (acceptor, cert_pem) = common::tls::self_signed_acceptor(REMOTE_NAME);
    let sink = received.clone();
    tokio::spawn(async move {
        loop {
            let Ok((mut socket, _)) = listener.accept().await else {
                return;
            };
            let sink = sink.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let mut request = [0u8; 8];
                if socket.read_exact(&mut request).await.is_err() {
                    return;
                }
                // SSLRequest: length 8, code 80877103.
                if request != [0, 0, 0, 8, 4, 210, 22, 47] {
                    // A startup message straight away (sslmode=disable).
                    sink.lock().unwrap().extend_from_slice(&request);
                    converse(&mut socket, &sink).await;
                    return;
                }
                match kind {
                    Fake::NoTls => {
                        if socket.write_all(b"N").await.is_err() {
                            return;
                        }
                        converse(&mut socket, &sink).await;
                    }
                    Fake::SelfSigned => {
                        if socket.write_all(b"S").await.is_err() {
                            return;
                        }
                        if let Ok(mut tls) = acceptor.accept(socket).await {
                            converse(&mut tls, &sink).await;
                        }
                    }
                }
            });
        }
    });
    Server {
        port,
        received,
        cert_pem,
    }
}

/// Reads the startup message, asks for the password in clear text, and
/// records whatever comes back.
async fn converse<S: AsyncRead + AsyncWrite + Unpin>(socket: &mut S, sink: &Arc<Mutex<Vec<u8>>>) {
    let mut buf = [0u8; 4096];
    let mut asked = false;
    loop {
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), socket.read(&mut buf));
        match read.await {
            Ok(Ok(n)) if n > 0 => {
                sink.lock().unwrap().extend_from_slice(&buf[..n]);
                if !asked {
                    asked = true;
                    // AuthenticationCleartextPassword.
                    if socket
                        .write_all(&[b'R', 0, 0, 0, 8, 0, 0, 0, 3])
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
            }
            _ => return,
        }
    }
}

impl Server {
    fn received(&self) -> String {
        String::from_utf8_lossy(&self.received.lock().unwrap()).into_owned()
    }
}

/// `mailsync db verify` against `db_url`, isolated by the harness.
async fn verify_with(db_url: String) -> Output {
    tokio::task::spawn_blocking(move || {
        let dir = tempfile::tempdir().unwrap();
        common::command_for("http://127.0.0.1:1", common::DEFAULT_ANON_KEY, dir.path())
            .args(["db", "verify"])
            .env("SUPABASE_DB_URL", db_url)
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn remote_url(port: u16, extra: &str) -> String {
    format!(
        "postgresql://postgres:{PASSWORD}@{REMOTE_NAME}:{port}/postgres?hostaddr=127.0.0.1{extra}"
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_server_without_tls_never_gets_the_password() {
    let server = start(Fake::NoTls).await;
    let out = verify_with(remote_url(server.port, "")).await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("refusing to connect"), "{err}");
    assert!(!err.contains(PASSWORD), "{err}");
    assert!(
        !server.received().contains(PASSWORD) && server.received().is_empty(),
        "the client went on after 'N': {:?}",
        server.received()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_server_with_a_self_signed_certificate_never_gets_the_password() {
    let server = start(Fake::SelfSigned).await;
    for extra in [
        "",
        "&sslmode=require",
        "&sslmode=verify-full",
        "&sslmode=verify-ca",
    ] {
        let out = verify_with(remote_url(server.port, extra)).await;
        assert_eq!(out.status.code(), Some(3), "{extra}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("refusing to connect"),
            "{extra}: {}",
            stderr(&out)
        );
    }
    assert!(
        server.received().is_empty(),
        "bytes reached the server through TLS: {:?}",
        server.received()
    );
}

// The controls: the same fake servers do capture the password when the
// client does send it, so the two tests above can fail.

#[tokio::test(flavor = "multi_thread")]
async fn explicit_prefer_or_a_loopback_host_still_connect_without_tls() {
    let server = start(Fake::NoTls).await;
    let out = verify_with(remote_url(server.port, "&sslmode=prefer")).await;
    assert!(
        stderr(&out).contains("warning: sslmode=prefer"),
        "{}",
        stderr(&out)
    );
    assert!(
        server.received().contains(PASSWORD),
        "the explicit choice is honoured"
    );

    let local = start(Fake::NoTls).await;
    let out = verify_with(format!(
        "postgresql://postgres:{PASSWORD}@127.0.0.1:{}/postgres",
        local.port
    ))
    .await;
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert!(
        local.received().contains(PASSWORD),
        "loopback works without TLS"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_certificate_given_with_sslrootcert_is_trusted() {
    let server = start(Fake::SelfSigned).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &server.cert_pem).unwrap();
    let out = verify_with(remote_url(
        server.port,
        &format!("&sslrootcert={}", ca.display()),
    ))
    .await;
    assert!(
        server.received().contains(PASSWORD),
        "verified TLS, then the password: {}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(PASSWORD), "{}", stderr(&out));
}
