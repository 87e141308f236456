//! mailsync's SMTP session alone, at full speed and without a database: N
//! messages built as `campaigns deliver` builds them (one template, merge
//! fields filled, a Message-ID each, built when sent) go over C reused
//! connections to `MAILSYNC_SMTP_URL`. Prints the seconds and the messages
//! per second; exits 1 unless the server accepted every one.
//! `scripts/bench-deliver` runs it beside `smtp-source` and `deliver`, to
//! tell the client's time from the database's.
//!
//!   MAILSYNC_SMTP_URL=smtp://127.0.0.1:2525 cargo run --release --example smtp_wire -- 20000 8

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mailsync::settings::Source;
use mailsync::smtp::{Attempt, Envelope, Mailer, Recipient, SmtpSettings, Template};

#[tokio::main]
async fn main() {
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("usage: smtp_wire N CONNECTIONS"))
        .collect();
    let (n, connections) = match args[..] {
        [n, c] => (n, c.max(1)),
        _ => panic!("usage: smtp_wire N CONNECTIONS"),
    };
    let settings = SmtpSettings::resolve(
        |name| std::env::var(name).ok().map(|v| (v, Source::Environment)),
        None,
    )
    .unwrap_or_else(|e| panic!("{e}"));
    let mailer = Mailer::new(
        &settings.server,
        &settings.extra_roots,
        Duration::from_secs(30),
    )
    .unwrap();
    mailer.check().await.unwrap_or_else(|e| panic!("{e}"));
    let template = Arc::new(Template::new(
        "Nouveautés pour {{organization}}",
        "Bonjour {{email}}, voici les nouveautés de {{organization}}.",
    ));
    let settings = Arc::new(settings);
    let next = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let workers: Vec<_> = (0..connections)
        .map(|_| {
            let (mailer, template, settings) = (mailer.clone(), template.clone(), settings.clone());
            let (next, accepted) = (next.clone(), accepted.clone());
            tokio::spawn(async move {
                let mut session = mailer.session();
                let domain = settings.message_id_domain();
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= n {
                        break;
                    }
                    let id = uuid::Uuid::new_v4().hyphenated().to_string();
                    let email = format!("r{i}@bench.example");
                    let organization = format!("Organisation {}", i % 200);
                    let to = Recipient {
                        email: &email,
                        organization: Some(&organization),
                        unsubscribe_token: None,
                    };
                    let message = template
                        .message(&settings, &to, &format!("<{id}@{domain}>"))
                        .unwrap();
                    let envelope = Envelope {
                        return_path: &settings.return_path,
                        envelope_id: &id,
                    };
                    match session.send(&message, &envelope).await {
                        Attempt::Accepted(_) => {
                            accepted.fetch_add(1, Ordering::Relaxed);
                        }
                        other => eprintln!("smtp_wire: message {i}: {other:?}"),
                    }
                }
                session.close().await;
            })
        })
        .collect();
    for worker in workers {
        worker.await.unwrap();
    }
    let secs = started.elapsed().as_secs_f64();
    let accepted = accepted.load(Ordering::Relaxed);
    println!("{secs:.3} {:.0} {accepted}", accepted as f64 / secs);
    if accepted != n {
        eprintln!("smtp_wire: {accepted} of {n} accepted");
        std::process::exit(1);
    }
}
