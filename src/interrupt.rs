//! Ctrl-C (SIGINT) and SIGTERM: one rule for every command.
//!
//! The first signal stops the command cleanly: a command with work in
//! flight (`import`, `campaigns deliver`, `campaigns watch`, `bounces
//! fetch`) holds a [`CleanStop`] while it runs; the signal wakes it, it
//! finishes or rolls back what is in flight as it always does, prints what
//! was done and exits 130 (143 after SIGTERM). A command holding none has
//! nothing to finish: it exits at once with the same code. A second signal
//! exits at once, whatever is in flight, after giving back a terminal a
//! command holds ([`on_hard_exit`]).
//!
//! The signals are caught from [`install`] on (called before any command
//! runs) to the end of the process, so no Ctrl-C ever falls back to the
//! default action (death by signal, with no exit code for a caller to read).

use std::sync::atomic::{AtomicI32, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::watch;

/// The signal that asked the command to stop (0: none yet).
static SIGNAL: AtomicI32 = AtomicI32::new(0);
/// How many [`CleanStop`]s are held.
static HELD: AtomicUsize = AtomicUsize::new(0);
/// Wakes whoever waits for the first signal.
static WAKE: OnceLock<watch::Sender<bool>> = OnceLock::new();
/// What the holders asked to print on the first signal.
static MESSAGES: Mutex<Vec<(u64, String)>> = Mutex::new(Vec::new());
static NEXT_ID: AtomicU64 = AtomicU64::new(1);
/// Written to stdout when a second signal ends the process at once: what
/// gives the terminal back (`campaigns watch`, while it holds the screen).
static ON_HARD_EXIT: Mutex<Option<String>> = Mutex::new(None);

fn wake() -> &'static watch::Sender<bool> {
    WAKE.get_or_init(|| watch::channel(false).0)
}

/// The exit code for a stop caused by `signal`: 128 + its number (Ctrl-C
/// 130, SIGTERM 143), the shells' convention.
fn code_for(signal: i32) -> i32 {
    128 + signal
}

/// The exit code of an interrupted command: 130 after Ctrl-C, 143 after
/// SIGTERM (130 when no signal came).
pub fn exit_code() -> u8 {
    match SIGNAL.load(Ordering::SeqCst) {
        0 => 130,
        n => code_for(n) as u8,
    }
}

/// Whether a signal asked the command to stop.
pub fn requested() -> bool {
    SIGNAL.load(Ordering::SeqCst) != 0
}

/// Catches SIGINT and SIGTERM for the rest of the process. Call once,
/// inside the runtime, before the command starts.
pub fn install() -> std::io::Result<()> {
    let mut interrupt = signal(SignalKind::interrupt())?;
    let mut terminate = signal(SignalKind::terminate())?;
    tokio::spawn(async move {
        loop {
            let number = tokio::select! {
                Some(()) = interrupt.recv() => libc::SIGINT,
                Some(()) = terminate.recv() => libc::SIGTERM,
                else => return,
            };
            received(number);
        }
    });
    Ok(())
}

/// One signal came: the first asks a clean stop (or exits when no command
/// has anything to finish), the second exits at once.
fn received(number: i32) {
    let first = SIGNAL
        .compare_exchange(0, number, Ordering::SeqCst, Ordering::SeqCst)
        .is_ok();
    if !first || HELD.load(Ordering::SeqCst) == 0 {
        let restore = ON_HARD_EXIT
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(text) = restore {
            use std::io::Write;
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(text.as_bytes());
            let _ = stdout.flush();
        }
        std::process::exit(code_for(number));
    }
    let messages = MESSAGES.lock().unwrap_or_else(|p| p.into_inner());
    for (_, message) in messages.iter() {
        eprintln!("\n{message}");
    }
    drop(messages);
    wake().send_replace(true);
}

/// What to write to stdout if a signal ends the process at once from now on
/// (`None`: nothing): the sequence that gives a terminal back, while a
/// command holds it in a state a shell must not be left in.
pub fn on_hard_exit(text: Option<String>) {
    *ON_HARD_EXIT.lock().unwrap_or_else(|p| p.into_inner()) = text;
}

/// Held by a command while it has work in flight that a signal must let it
/// finish: the first signal then wakes [`CleanStop::wait`] instead of
/// ending the process.
pub struct CleanStop {
    id: u64,
    woken: watch::Receiver<bool>,
}

impl CleanStop {
    /// Holds a clean stop; `message` (what the command does before it stops,
    /// such as "finishing the emails in flight") is printed on stderr when
    /// the first signal comes.
    pub fn hold(message: Option<String>) -> Self {
        let id = NEXT_ID.fetch_add(1, Ordering::SeqCst);
        if let Some(message) = message {
            MESSAGES
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push((id, message));
        }
        HELD.fetch_add(1, Ordering::SeqCst);
        Self {
            id,
            woken: wake().subscribe(),
        }
    }

    /// Waits for the first signal (at once if it already came).
    pub async fn wait(&mut self) {
        if requested() {
            return;
        }
        let _ = self.woken.wait_for(|woken| *woken).await;
    }

    /// `work`'s result, or `None` when the first signal comes before it
    /// ends (`work` is then dropped): a wait that may hang, such as a
    /// request to a server that stopped answering, never holds a stop back.
    pub async fn unless_stopped<T>(
        &mut self,
        work: impl std::future::Future<Output = T>,
    ) -> Option<T> {
        tokio::select! {
            biased;
            _ = self.wait() => None,
            done = work => Some(done),
        }
    }
}

impl Drop for CleanStop {
    fn drop(&mut self) {
        MESSAGES
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(id, _)| *id != self.id);
        HELD.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_code_is_128_plus_the_signal() {
        assert_eq!(code_for(libc::SIGINT), 130);
        assert_eq!(code_for(libc::SIGTERM), 143);
        // No signal in this process: an interrupted command says 130.
        assert_eq!(exit_code(), 130);
    }
}
