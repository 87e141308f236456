//! The connections: each takes the next email from the queue, waits for its
//! slot, sends it (retrying temporary failures with backoff) and hands the
//! outcome to the recorder. Once a stop is asked, the emails not yet tried
//! are released untouched.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use indicatif::ProgressBar;
use tokio::sync::mpsc;
use uuid::Uuid;

use super::claims::{Claimed, Record};
use super::journal::Journal;
use super::pacing::Pace;
use super::queue::QueueReceiver;
use super::stop::Stop;
use super::summary::{show_counts, Tally};
use crate::domain::EmailStatus;
use crate::error::Error;
use crate::smtp::{Attempt, Envelope, Mailer, Recipient, SmtpSession, SmtpSettings, Template};
use crate::t;

/// Consecutive temporary failures (any worker) after which the run stops:
/// the server is gone, and trying on would only burn the emails' retries.
const GIVE_UP_AFTER: u64 = 25;

/// What the queue carries to the connections: a claimed email, handed.
pub(super) enum Job {
    Send(Claimed, Arc<Template>),
}

/// What every connection shares.
pub(super) struct Sender {
    pub jobs: QueueReceiver<Job>,
    /// The signed-in user's id, for `{{unsubscribe_token}}`.
    pub user_id: Arc<str>,
    pub mailer: Mailer,
    pub settings: Arc<SmtpSettings>,
    /// Where reports and bounces go back to (the envelope sender).
    pub return_path: lettre::Address,
    pub verp: bool,
    pub pace: Arc<Pace>,
    pub records: mpsc::UnboundedSender<Record>,
    pub tally: Arc<Tally>,
    pub stop: Arc<Stop>,
    pub progress: ProgressBar,
    pub attempts: u32,
    pub retry_delay: Duration,
    /// The worker's journal (crash recovery): `start` before each SMTP
    /// transaction, `done` after its reply.
    pub journal: Option<Arc<Journal>>,
}

/// One connection's worth of work, until the queue is closed and empty.
pub(super) async fn send_emails(s: Sender) {
    let mut session = s.mailer.session();
    while let Some(job) = s.jobs.recv().await {
        let Job::Send(email, template) = job;
        if s.stop.is_set() {
            release(&s, email.id);
            continue;
        }
        let record = deliver_one(&s, &mut session, &email, &template).await;
        match record.status {
            EmailStatus::Sent => &s.tally.sent,
            EmailStatus::Bounced => &s.tally.bounced,
            EmailStatus::Failed => &s.tally.failed,
            _ => &s.tally.released,
        }
        .fetch_add(1, Ordering::Relaxed);
        if record.status.is_settled() {
            show_counts(&s.progress, &s.tally);
        }
        let _ = s.records.send(record);
    }
    session.close().await;
}

fn release(s: &Sender, id: Uuid) {
    s.tally.released.fetch_add(1, Ordering::Relaxed);
    let _ = s.records.send(Record::release(id));
}

async fn deliver_one(
    s: &Sender,
    session: &mut SmtpSession,
    email: &Claimed,
    template: &Template,
) -> Record {
    let record = |status, response| Record {
        id: email.id,
        status,
        response,
    };
    let token = s.settings.unsubscribe_secret.as_ref().map(|secret| {
        crate::smtp::unsubscribe_token(secret, &s.user_id, &email.id, &email.recipient_email)
    });
    let to = Recipient {
        email: &email.recipient_email,
        organization: email.recipient_organization.as_deref(),
        unsubscribe_token: token.as_deref(),
    };
    let message = match template.message(&s.settings, &to, &email.message_id) {
        Ok(m) => m,
        Err(why) => return record(EmailStatus::Failed, Some(format!("not sent: {why}"))),
    };
    let envelope_id = email.id.hyphenated().to_string();
    let verp = match s.verp {
        false => None,
        true => match crate::smtp::verp_address(&s.return_path, &envelope_id) {
            Ok(address) => Some(address),
            Err(why) => {
                let why = format!("not sent: no VERP return path: {why}");
                return record(EmailStatus::Failed, Some(why));
            }
        },
    };
    let envelope = Envelope {
        return_path: verp.as_ref().unwrap_or(&s.return_path),
        envelope_id: &envelope_id,
    };
    let mut delay = s.retry_delay;
    let mut tried = 0;
    loop {
        s.pace.wait().await;
        tried += 1;
        if let Some(journal) = &s.journal {
            journal.started(email.id);
        }
        let attempt = session.send(&message, &envelope).await;
        if let Some(journal) = &s.journal {
            journal_reply(journal, email.id, &attempt);
        }
        if !matches!(attempt, Attempt::Temporary(_)) {
            s.tally.temporary_streak.store(0, Ordering::Relaxed);
        }
        match attempt {
            Attempt::Accepted(reply) => return record(EmailStatus::Sent, Some(reply)),
            Attempt::Bounced(reply) => return record(EmailStatus::Bounced, Some(reply)),
            Attempt::Refused(reply) => return record(EmailStatus::Failed, Some(reply)),
            Attempt::Temporary(reply) => {
                let streak = s.tally.temporary_streak.fetch_add(1, Ordering::Relaxed) + 1;
                if streak >= GIVE_UP_AFTER {
                    s.stop.fail(Error::failure(t!(
                        "deliver-error-smtp-down",
                        server = s.settings.server.masked(),
                        count = streak.to_string(),
                        reply = reply.as_str()
                    )));
                }
                // A temporary refusal means the server did not take it: when
                // stopping, or out of tries, nothing was delivered.
                if s.stop.is_set() {
                    return record(EmailStatus::Pending, None);
                }
                if tried >= s.attempts {
                    return record(
                        EmailStatus::Failed,
                        Some(format!("{reply} (gave up after {tried} tries)")),
                    );
                }
                s.tally.retries.fetch_add(1, Ordering::Relaxed);
                tokio::select! {
                    _ = tokio::time::sleep(delay) => {}
                    _ = s.stop.notify.notified() => {}
                }
                delay = delay.saturating_mul(2);
            }
        }
    }
}

/// The journal's `done` line for a final reply. A temporary failure writes
/// none: a dropped connection or a timeout may follow an accepted message,
/// so the email stays "started" (unknown) until its outcome is recorded.
fn journal_reply(journal: &Journal, id: Uuid, attempt: &Attempt) {
    let (status, reply) = match attempt {
        Attempt::Accepted(reply) => (EmailStatus::Sent, reply),
        Attempt::Bounced(reply) => (EmailStatus::Bounced, reply),
        Attempt::Refused(reply) => (EmailStatus::Failed, reply),
        Attempt::Temporary(_) => return,
    };
    journal.done(id, status, Some(reply));
}
