//! `campaigns watch` on a real pseudo-terminal (util-linux `script`, as the
//! prompt tests use): the watch takes the alternate screen and hides the
//! cursor; after Ctrl-C, and after a crash, the terminal is given back as it
//! was: the alternate screen left, the cursor shown, the line settings
//! (`stty -g`) unchanged, the last screen kept in the scrollback.

use crate::common;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const ENTER_ALTERNATE: &str = "\x1b[?1049h";
const LEAVE_ALTERNATE: &str = "\x1b[?1049l";
const HIDE_CURSOR: &str = "\x1b[?25l";
const SHOW_CURSOR: &str = "\x1b[?25h";

struct Run {
    /// Everything written to the terminal so far.
    screen: Arc<Mutex<Vec<u8>>>,
    child: std::process::Child,
    stdin: Option<std::process::ChildStdin>,
    dir: tempfile::TempDir,
}

impl Run {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.screen.lock().unwrap()).into_owned()
    }

    /// Waits until the terminal shows `what`, at most `limit`.
    fn until_shown(&self, what: &str, limit: Duration) {
        let started = Instant::now();
        while !self.text().contains(what) {
            assert!(
                started.elapsed() < limit,
                "the terminal never showed {what:?}: {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits for the shell around the watch to finish; the watch's exit
    /// status and the line settings before and after it.
    fn finish(mut self) -> (String, String, String, String) {
        drop(self.stdin.take());
        let started = Instant::now();
        loop {
            if self.child.try_wait().unwrap().is_some() {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the watch did not end: {:?}",
                self.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let read = |name: &str| {
            std::fs::read_to_string(self.dir.path().join(name))
                .unwrap_or_else(|e| panic!("{name}: {e}; terminal: {:?}", self.text()))
                .trim()
                .to_string()
        };
        let (status, before, after) = (read("status"), read("before"), read("after"));
        (status, before, after, self.text())
    }
}

/// Runs `campaigns watch ARGS` on a pseudo-terminal, inside a shell that
/// records `stty -g` before and after it and the watch's exit status.
fn watch_on_terminal(
    stack: &common::Stack,
    token: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let quoted = |a: &str| format!("'{}'", a.replace('\'', "'\\''"));
    let watch = std::iter::once(common::BIN)
        .chain(["campaigns", "watch"])
        .chain(args.iter().copied())
        .map(quoted)
        .collect::<Vec<_>>()
        .join(" ");
    // The shell survives the Ctrl-C meant for the watch (a trap, unlike an
    // ignored signal, is not inherited).
    let shell =
        format!(
        "trap 'true' INT; stty cols 120 rows 40; stty -g > before; {watch}; echo $? > status; stty -g > after"
    );
    let mut cmd = Command::new("script");
    cmd.args(["-qec", &format!("sh -c {}", quoted(&shell)), "/dev/null"]);
    cmd.current_dir(dir.path())
        .env_remove("MAILSYNC_ACCESS_TOKEN")
        .env("MAILSYNC_CONFIG_DIR", dir.path().join("config"))
        .env("SUPABASE_URL", &stack.url)
        .env("SUPABASE_ANON_KEY", &stack.anon_key)
        .env("MAILSYNC_ACCESS_TOKEN", token)
        .env("NO_COLOR", "1")
        .env("MAILSYNC_LANG", "en")
        .env("TERM", "xterm-256color")
        .envs(env.iter().copied())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null());
    let mut child = cmd
        .spawn()
        .expect("running `script` (util-linux) to get a terminal");
    let mut stdout = child.stdout.take().unwrap();
    let screen: Arc<Mutex<Vec<u8>>> = Arc::default();
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = stdout.read(&mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    let stdin = child.stdin.take();
    Run {
        screen,
        child,
        stdin,
        dir,
    }
}

/// The terminal as the watch left it: after the last time it took the
/// alternate screen and hid the cursor, it left and showed it again.
fn assert_restored(text: &str) {
    let entered = text
        .rfind(ENTER_ALTERNATE)
        .expect("the watch took the alternate screen");
    let hidden = text.rfind(HIDE_CURSOR).expect("the watch hid the cursor");
    let left = text.rfind(LEAVE_ALTERNATE);
    let shown = text.rfind(SHOW_CURSOR);
    assert!(
        left.is_some_and(|l| l > entered),
        "the alternate screen was not left: {text:?}"
    );
    assert!(
        shown.is_some_and(|s| s > hidden),
        "the cursor was left hidden: {text:?}"
    );
}

#[test]
fn ctrl_c_gives_the_terminal_back_as_it_was() {
    let stack = common::stack();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let user = rt.block_on(async {
        let stack = common::ready().await;
        common::new_user(&stack).await
    });
    let mut run = watch_on_terminal(
        &stack,
        &user.token,
        &["--mode", "poll", "--interval", "0.5"],
        &[],
    );
    // The screen is up (the status line is drawn on the alternate screen).
    run.until_shown("polling every 0.5 s", Duration::from_secs(15));
    assert!(run.text().contains(ENTER_ALTERNATE));
    assert!(
        !run.text().contains(LEAVE_ALTERNATE),
        "still on the alternate screen"
    );
    // Ctrl-C, typed at the terminal: the line discipline sends SIGINT.
    let stdin = run.stdin.as_mut().unwrap();
    stdin.write_all(b"\x03").unwrap();
    stdin.flush().unwrap();
    run.until_shown(LEAVE_ALTERNATE, Duration::from_secs(10));
    let (status, before, after, text) = run.finish();
    assert_eq!(status, "130", "Ctrl-C ends the watch with 130: {text:?}");
    assert_eq!(before, after, "the terminal's line settings changed");
    assert_restored(&text);
    // The last screen stays in the scrollback, after the alternate screen.
    let left = text.rfind(LEAVE_ALTERNATE).unwrap();
    let drawn = &text[text[..left].rfind("\x1b[2J").unwrap() + 4..left];
    let tail = &text[left..];
    // (The terminal echoes ^C, and the cursor is shown, after it.)
    let drawn = drawn.split("^C").next().unwrap();
    for line in drawn.lines().map(str::trim).filter(|l| !l.is_empty()) {
        assert!(
            tail.contains(line),
            "{line:?} is not in the scrollback: {tail:?}"
        );
    }
    assert!(tail.contains("Sending in progress (0)"), "{tail:?}");
}

#[test]
fn a_crash_gives_the_terminal_back_too() {
    let stack = common::stack();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let user = rt.block_on(async {
        let stack = common::ready().await;
        common::new_user(&stack).await
    });
    // Debug builds panic after the first screen when asked to.
    let run = watch_on_terminal(
        &stack,
        &user.token,
        &["--mode", "poll", "--interval", "0.5"],
        &[("MAILSYNC_DEBUG_PANIC_AFTER_DRAW", "1")],
    );
    let (status, before, after, text) = run.finish();
    assert_eq!(status, "101", "a panic: {text:?}");
    assert!(
        text.contains("polling every 0.5 s"),
        "the screen was drawn first: {text:?}"
    );
    assert_eq!(before, after, "the terminal's line settings changed");
    assert_restored(&text);
    // The panic message is readable on the main screen, after leaving.
    let entered = text.rfind(ENTER_ALTERNATE).unwrap();
    let tail = &text[entered + text[entered..].find(LEAVE_ALTERNATE).unwrap()..];
    assert!(tail.contains("panicked"), "{tail:?}");
}

/// A read that hangs (an API that took the connection and stopped
/// answering; the client waits up to 120 s) does not hold Ctrl-C back: one
/// Ctrl-C ends the watch at once with 130 and the terminal given back. Two
/// in a row, the second of which ends the process at once when it comes
/// before the first is done, give it back too.
#[test]
fn ctrl_c_during_a_read_that_hangs_ends_the_watch_at_once_with_the_terminal_back() {
    let stack = common::stack();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let user = rt.block_on(async {
        let stack = common::ready().await;
        common::new_user(&stack).await
    });
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let api = format!("http://127.0.0.1:{}", listener.local_addr().unwrap().port());
    let held: Arc<Mutex<Vec<std::net::TcpStream>>> = Arc::default();
    {
        let held = held.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                held.lock().unwrap().push(stream);
            }
        });
    }
    for presses in [&b"\x03"[..], &b"\x03\x03"[..]] {
        let before = held.lock().unwrap().len();
        let mut run = watch_on_terminal(
            &stack,
            &user.token,
            &["--mode", "poll"],
            &[("SUPABASE_URL", &api)],
        );
        run.until_shown(ENTER_ALTERNATE, Duration::from_secs(15));
        // The first read is on the wire, unanswered.
        let started = Instant::now();
        while held.lock().unwrap().len() == before {
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "the watch never connected: {:?}",
                run.text()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let stdin = run.stdin.as_mut().unwrap();
        stdin.write_all(presses).unwrap();
        stdin.flush().unwrap();
        let pressed = Instant::now();
        run.until_shown(LEAVE_ALTERNATE, Duration::from_secs(5));
        let (status, before, after, text) = run.finish();
        assert!(
            pressed.elapsed() < Duration::from_secs(5),
            "the watch took {:?} to end",
            pressed.elapsed()
        );
        assert_eq!(status, "130", "{presses:?}: {text:?}");
        assert_eq!(before, after, "the terminal's line settings changed");
        assert_restored(&text);
    }
}
