//! Asking a run to stop: Ctrl-C, a database error, or the SMTP server gone.
//! The first error is kept for the end; a second Ctrl-C exits at once
//! (`crate::interrupt`, the rule every command follows).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::error::Error;
use crate::interrupt::CleanStop;
use crate::t;

#[derive(Default)]
pub(super) struct Stop {
    requested: AtomicBool,
    interrupted: AtomicBool,
    /// Wakes whoever waits (a retry's delay, `--follow`'s poll).
    pub notify: Notify,
    error: Mutex<Option<Error>>,
}

impl Stop {
    pub(super) fn is_set(&self) -> bool {
        self.requested.load(Ordering::SeqCst)
    }

    pub(super) fn request(&self) {
        self.requested.store(true, Ordering::SeqCst);
        self.notify.notify_waiters();
    }

    /// Stops the run for `error` (the first one given is the one kept).
    pub(super) fn fail(&self, error: Error) {
        let mut slot = self.error.lock().unwrap_or_else(|p| p.into_inner());
        if slot.is_none() {
            *slot = Some(error);
        }
        drop(slot);
        self.request();
    }

    /// Whether Ctrl-C stopped the run.
    pub(super) fn interrupted(&self) -> bool {
        self.interrupted.load(Ordering::SeqCst)
    }

    /// The error that stopped the run, if one did.
    pub(super) fn take_error(&self) -> Option<Error> {
        self.error.lock().unwrap_or_else(|p| p.into_inner()).take()
    }
}

/// Ctrl-C (or SIGTERM) asks the run to stop cleanly; a second one exits
/// at once (code 130). Until this task ends (it is aborted once every
/// outcome is recorded), the first signal does not end the process.
pub(super) async fn watch_ctrl_c(stop: Arc<Stop>) {
    let mut signal = CleanStop::hold(Some(t!("deliver-stopping")));
    signal.wait().await;
    stop.interrupted.store(true, Ordering::SeqCst);
    stop.request();
    // Held until the run ends: the second signal is the one that exits.
    std::future::pending::<()>().await;
}
