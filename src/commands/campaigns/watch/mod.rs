//! `mailsync campaigns watch`: "Envoi en progression" and "Campagne
//! terminée" live in the terminal. Polls the views through the REST API, or
//! listens to Supabase Realtime on the tables and re-reads the views when
//! they change (Realtime never streams views).
//!
//! Here: the loop and the screen; `data` (what a refresh reads), `render`
//! (the text), the Realtime client is `crate::supabase::realtime`.
//! Server side: views `campaign_analytics` and `dashboard_analytics`, and
//! table `campaign_live` (the only one in the `supabase_realtime`
//! publication), in `sql/MASTER-DATABASE.sql`.
//! With Realtime, the screen says "live" only once the server confirmed the
//! subscription; a refusal or a quota close is shown with its reason, the
//! watch polls meanwhile and joins again later. Tests: `tests/it/campaigns.rs` (watch against the
//! stack), `tests/it/campaigns_watch_render.rs` (the screen),
//! `tests/it/campaigns_watch_realtime.rs`.

pub mod data;
pub mod render;

use std::collections::HashMap;
use std::io::IsTerminal;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;

use crate::error::{Error, ErrorKind, Result};
use crate::i18n;
use crate::output::Output;
use crate::settings::Config;
use crate::supabase::realtime;
use crate::t;
use data::Snapshot;
use render::Rates;

/// Where refreshes come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Realtime when the project offers it, otherwise polling.
    Auto,
    /// Read the views every `interval`.
    Poll,
    /// Listen to Supabase Realtime and re-read on each change.
    Realtime,
}

#[derive(Debug, Clone)]
pub struct Options {
    pub mode: Mode,
    /// Seconds between reads when polling (at least 0.5).
    pub interval_secs: f64,
    /// Print one snapshot and exit.
    pub once: bool,
    /// Exit 0 once no campaign is sending.
    pub until_done: bool,
}

/// Re-reads at most this often when changes arrive in bursts.
const COALESCE: Duration = Duration::from_millis(250);
/// How long a change waits for the rest of its burst.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// With Realtime, the views are still re-read this often, in case an event
/// was missed while reconnecting.
const SAFETY_POLL: Duration = Duration::from_secs(30);
/// The database moves a campaign's live row at most every 1.5 s: a change is
/// followed by a second re-read this much later, which shows what that limit
/// held back.
const TRAILING: Duration = Duration::from_millis(2000);
const MAX_BACKOFF: Duration = Duration::from_secs(30);

pub async fn run(options: &Options, config: &Config, out: &Output) -> Result<()> {
    if !options.interval_secs.is_finite() || options.interval_secs < 0.5 {
        return Err(Error::usage(t!("watch-error-interval")));
    }
    let interval = Duration::from_secs_f64(options.interval_secs);
    let mut token = crate::supabase::user::access_token(config, out).await?;
    let mut client = crate::supabase::rest::RestClient::new(config, &token)?;
    let mut screen = Screen::new(out);

    if options.once {
        let snapshot = data::fetch(&client).await?;
        screen.show(&snapshot, &Rates::new(), "")?;
        return screen.finish();
    }

    // Where refresh requests come from: a timer, and Realtime when used.
    let (changes_tx, mut changes) = mpsc::channel::<realtime::Event>(64);
    // Whether a Realtime listener runs, and whether the server confirmed
    // the subscription (only then is the screen "live").
    let mut listening = false;
    let mut live = false;
    // The token Realtime uses, replaced when the session refreshes.
    let mut realtime_token = None;
    let polling = t!(
        "watch-polling",
        seconds = i18n::current().seconds(interval.as_secs_f64())
    );
    let mut status = polling.clone();
    if options.mode != Mode::Poll {
        let settings = realtime::Settings::for_project(config, &token)?;
        match realtime::connect(&settings).await {
            Ok(connection) => {
                out.debug("watch: joined Supabase Realtime; waiting for the subscription");
                realtime_token = Some(settings.token.clone());
                status = t!("watch-joining", polling = polling.as_str());
                tokio::spawn(realtime::listen(settings, Some(connection), changes_tx));
                listening = true;
            }
            // No Realtime server at all: polling is the way, unless Realtime
            // was asked for.
            Err(e) if e.kind() != ErrorKind::Refused => {
                if options.mode == Mode::Realtime {
                    return Err(e);
                }
                out.debug(format!("watch: Realtime is not available ({e}); {polling}"));
            }
            // The server answered and refused (a transient join failure, a
            // quota): say why, poll, and try again later.
            Err(e) => {
                out.note(t!(
                    "watch-note-realtime-refused",
                    reason = e.to_string(),
                    polling = polling.as_str()
                ));
                realtime_token = Some(settings.token.clone());
                status = format!("{polling} ({})", e.message());
                tokio::spawn(realtime::listen(settings, None, changes_tx));
                listening = true;
            }
        }
    }
    let live_line = t!("watch-live");

    let mut rates = RateMeter::default();
    let mut backoff = interval;
    let mut next_fetch = Instant::now();
    let mut trailing: Option<Instant> = None;
    let mut last_fetch = Instant::now() - COALESCE;
    let mut last: Option<Snapshot> = None;
    // The last re-read failed: the status says so until one succeeds.
    let mut fetch_failing = false;
    let mut resize = tokio::time::interval(Duration::from_millis(250));
    // Ctrl-C (or SIGTERM) ends the watch: the screen is given back, then
    // exit 130 (`crate::interrupt`).
    let mut signal = crate::interrupt::CleanStop::hold(None);
    let mut interrupted = false;
    loop {
        let due = trailing.map_or(next_fetch, |t| t.min(next_fetch));
        let wait = due.saturating_duration_since(Instant::now());
        // In this order: Ctrl-C, a read that is due, then events (so the
        // first read always comes before the subscription's own re-read).
        tokio::select! {
            biased;
            _ = signal.wait() => {
                interrupted = true;
                break;
            }
            _ = tokio::time::sleep(wait) => {}
            event = changes.recv(), if listening => {
                match event {
                    Some(realtime::Event::Subscribed) => {
                        live = true;
                        status = live_line.clone();
                        out.debug("watch: the Realtime subscription is confirmed");
                        next_fetch = next_fetch.min(Instant::now() + DEBOUNCE);
                    }
                    Some(realtime::Event::Changed) => {
                        // Coalesce a burst into one re-read: wait a moment for
                        // the rest of it, and never re-read twice in 250 ms.
                        let soonest = (last_fetch + COALESCE).max(Instant::now() + DEBOUNCE);
                        next_fetch = next_fetch.min(soonest);
                        trailing = Some(Instant::now() + TRAILING);
                    }
                    Some(realtime::Event::Disconnected(reason)) => {
                        live = false;
                        status = t!(
                            "watch-reconnecting-realtime",
                            polling = polling.as_str(),
                            reason = reason.as_str()
                        );
                        next_fetch = next_fetch.min(Instant::now() + interval);
                        if let Some(s) = &last { screen.show(s, &rates.rates, &status)?; }
                    }
                    Some(realtime::Event::Refused { reason, retry_in }) => {
                        live = false;
                        status = t!(
                            "watch-realtime-refused",
                            polling = polling.as_str(),
                            reason = reason.as_str(),
                            seconds = format!("{:.0} s", retry_in.as_secs_f64())
                        );
                        out.note(format!("watch: {status}"));
                        next_fetch = next_fetch.min(Instant::now() + interval);
                        if let Some(s) = &last { screen.show(s, &rates.rates, &status)?; }
                    }
                    None => {
                        listening = false;
                        live = false;
                        status = t!("watch-realtime-closed", polling = polling.as_str());
                    }
                }
                continue;
            }
            _ = resize.tick() => {
                if screen.resized() {
                    if let Some(s) = &last { screen.show(s, &rates.rates, &status)?; }
                }
                continue;
            }
        }
        if trailing.is_some_and(|t| Instant::now() >= t) {
            trailing = None;
            next_fetch = Instant::now();
        }
        if Instant::now() < next_fetch {
            continue;
        }
        last_fetch = Instant::now();
        // A saved session is refreshed as it nears expiry: read with the
        // new token, and hand it to the Realtime channel.
        // A read that hangs (a server that stopped answering) must not hold
        // Ctrl-C back: the signal ends the wait, as it ends the sleep.
        let Some(fresh) = signal
            .unless_stopped(crate::supabase::user::access_token(config, out))
            .await
        else {
            interrupted = true;
            break;
        };
        match fresh {
            Ok(fresh) if fresh != token => {
                out.debug("watch: the session was refreshed");
                client = crate::supabase::rest::RestClient::new(config, &fresh)?;
                if let Some(shared) = &realtime_token {
                    if let Ok(mut current) = shared.lock() {
                        *current = fresh.clone();
                    }
                }
                token = fresh;
            }
            Ok(_) => {}
            Err(e) => {
                screen.finish()?;
                return Err(e);
            }
        }
        let Some(fetched) = signal.unless_stopped(data::fetch(&client)).await else {
            interrupted = true;
            break;
        };
        match fetched {
            Ok(snapshot) => {
                backoff = if live { SAFETY_POLL } else { interval };
                next_fetch = Instant::now() + backoff;
                if fetch_failing {
                    fetch_failing = false;
                    status = if live {
                        live_line.clone()
                    } else {
                        polling.clone()
                    };
                }
                rates.update(&snapshot);
                screen.show(&snapshot, &rates.rates, &status)?;
                // Debug builds only: the tests' way to check that a crash
                // gives the terminal back.
                #[cfg(debug_assertions)]
                if std::env::var_os("MAILSYNC_DEBUG_PANIC_AFTER_DRAW").is_some() {
                    panic!("MAILSYNC_DEBUG_PANIC_AFTER_DRAW is set");
                }
                let done = snapshot.sending.is_empty();
                last = Some(snapshot);
                if options.until_done && done {
                    break;
                }
            }
            // An expired session or a refused token will not get better by
            // waiting: stop and say so. Anything else may pass: retry.
            Err(e) if e.kind() == ErrorKind::Config => {
                screen.finish()?;
                return Err(e);
            }
            Err(e) => {
                backoff = (backoff * 2).min(MAX_BACKOFF);
                next_fetch = Instant::now() + backoff;
                fetch_failing = true;
                status = t!(
                    "watch-retrying",
                    seconds = format!("{:.0} s", backoff.as_secs_f64()),
                    reason = e.message()
                );
                match &last {
                    Some(s) => screen.show(s, &rates.rates, &status)?,
                    None => out.note(&status),
                }
            }
        }
    }
    screen.finish()?;
    if interrupted {
        return Err(Error::new(
            ErrorKind::Interrupted,
            t!("watch-error-interrupted"),
        ));
    }
    Ok(())
}

/// Emails settled per second per campaign, smoothed over refreshes.
#[derive(Default)]
struct RateMeter {
    previous: HashMap<String, (Instant, i64)>,
    rates: Rates,
}

impl RateMeter {
    fn update(&mut self, snapshot: &Snapshot) {
        let now = Instant::now();
        let mut seen = HashMap::new();
        for c in &snapshot.sending {
            let settled = c.settled();
            if let Some((then, before)) = self.previous.get(&c.campaign_id) {
                let dt = now.duration_since(*then).as_secs_f64();
                if dt > 0.05 {
                    let rate = ((settled - before) as f64 / dt).max(0.0);
                    let smoothed = match self.rates.get(&c.campaign_id) {
                        Some(old) => 0.5 * old + 0.5 * rate,
                        None => rate,
                    };
                    self.rates.insert(c.campaign_id.clone(), smoothed);
                }
            }
            seen.insert(c.campaign_id.clone(), (now, settled));
        }
        self.rates.retain(|id, _| seen.contains_key(id));
        self.previous = seen;
    }
}

/// Where refreshes go: redrawn in place on a terminal, a plain snapshot per
/// refresh otherwise, one JSON object per line with `--json`.
struct Screen<'a> {
    /// Everything shown goes through it (`Output::raw`); only the panic
    /// hook, which cannot reach it, writes to the terminal itself.
    out: &'a Output,
    kind: Kind,
    width: usize,
    last_text: Option<String>,
}

#[derive(PartialEq)]
enum Kind {
    Terminal,
    Plain,
    Json,
    Quiet,
}

impl<'a> Screen<'a> {
    fn new(out: &'a Output) -> Self {
        let kind = if out.json {
            Kind::Json
        } else if out.quiet {
            Kind::Quiet
        } else if std::io::stdout().is_terminal() {
            Kind::Terminal
        } else {
            Kind::Plain
        };
        if kind == Kind::Terminal {
            let _ = out.raw(&terminal::enter());
        }
        // Piped output is read in logs and files: no cutting there.
        let width = if kind == Kind::Terminal {
            terminal::width()
        } else {
            200
        };
        Self {
            out,
            kind,
            width,
            last_text: None,
        }
    }

    fn resized(&mut self) -> bool {
        if self.kind != Kind::Terminal {
            return false;
        }
        let width = terminal::width();
        let changed = width != self.width;
        self.width = width;
        changed && self.kind == Kind::Terminal
    }

    fn show(&mut self, snapshot: &Snapshot, rates: &Rates, status: &str) -> Result<()> {
        match self.kind {
            Kind::Json => {
                let line = crate::output::json_line(snapshot)?;
                self.out.raw(&format!("{line}\n"))?;
            }
            Kind::Quiet => {}
            Kind::Plain => {
                let text = render::screen(snapshot, rates, self.width, "");
                self.out.raw(&format!("{text}\n"))?;
            }
            Kind::Terminal => {
                let text = render::screen(snapshot, rates, self.width, status);
                self.out.raw(&terminal::redraw(&text))?;
                self.last_text = Some(text);
            }
        }
        Ok(())
    }

    fn finish(&mut self) -> Result<()> {
        if self.kind == Kind::Terminal {
            crate::interrupt::on_hard_exit(None);
            // Keep the last screen in the scrollback once the watch ends.
            let last = self.last_text.take().unwrap_or_default();
            self.kind = Kind::Plain;
            self.out.raw(&format!("{}{last}", terminal::leave()))?;
        }
        Ok(())
    }
}

impl Drop for Screen<'_> {
    fn drop(&mut self) {
        if self.kind == Kind::Terminal {
            crate::interrupt::on_hard_exit(None);
            let _ = self.out.raw(&terminal::leave());
        }
    }
}

/// The terminal: alternate screen, hidden cursor, restored on every way out
/// (normal end, error, Ctrl-C, panic). The escape sequences are built here
/// and written by the caller through `Output`.
mod terminal {
    use std::io::Write;

    use crossterm::{cursor, terminal, Command};

    pub fn width() -> usize {
        terminal::size().map(|(w, _)| w as usize).unwrap_or(100)
    }

    fn ansi(commands: &[&dyn Fn(&mut String) -> std::fmt::Result]) -> String {
        let mut text = String::new();
        for command in commands {
            let _ = command(&mut text);
        }
        text
    }

    /// Takes the alternate screen and hides the cursor; a panic, or a
    /// second Ctrl-C (which ends the process at once), from now on gives
    /// them back first.
    pub fn enter() -> String {
        crate::interrupt::on_hard_exit(Some(leave()));
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let mut stdout = std::io::stdout();
            let _ = stdout.write_all(leave().as_bytes());
            let _ = stdout.flush();
            default(info);
        }));
        ansi(&[&|f| terminal::EnterAlternateScreen.write_ansi(f), &|f| {
            cursor::Hide.write_ansi(f)
        }])
    }

    pub fn leave() -> String {
        ansi(&[&|f| cursor::Show.write_ansi(f), &|f| {
            terminal::LeaveAlternateScreen.write_ansi(f)
        }])
    }

    /// The whole screen redrawn from the top left.
    pub fn redraw(text: &str) -> String {
        let mut frame = ansi(&[&|f| cursor::MoveTo(0, 0).write_ansi(f), &|f| {
            terminal::Clear(terminal::ClearType::All).write_ansi(f)
        }]);
        for line in text.lines() {
            frame.push_str(line);
            frame.push_str("\r\n");
        }
        frame
    }
}
