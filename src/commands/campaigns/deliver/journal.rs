//! The worker's local journal: what it handed to SMTP, started and heard
//! back, appended line by line (one `write(2)` each) to a file of its own
//! while it runs, so that a worker killed at any instant loses nothing the
//! kernel has (a power loss may lose the last lines). The next `deliver` on
//! the machine replays the journals of dead workers (their `flock` is free)
//! through REST, as that worker: outcomes recorded, emails handed but never
//! started given back; only those the SMTP server had started stay unknown.
//!
//! Lines: `worker <id>` (first), `hand <email id>`, `start <email id>`,
//! `done <email id> <status> <reply>`. A line that does not parse is
//! ignored with a warning, never trusted. Memory stays flat: the index
//! keeps only the emails not recorded yet, and the file is rotated (the
//! open emails carried over) once it grows past a few megabytes.
//! It must not decide anything on its own: every effect goes through
//! `record_email_outcomes`, under the user's RLS and the worker's leases.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use uuid::Uuid;

use crate::domain::EmailStatus;

/// A segment is rotated once it is this big.
const ROTATE_AT: u64 = 4 << 20;
/// An SMTP reply is kept to this many bytes in the journal.
const MAX_REPLY: usize = 2000;

pub(super) struct Journal {
    dir: PathBuf,
    worker: String,
    /// Size past which the segment is rotated.
    rotate_at: u64,
    inner: Mutex<Segment>,
}

struct Segment {
    file: File,
    path: PathBuf,
    seq: u32,
    bytes: u64,
    /// The last line of each email not recorded yet.
    open: HashMap<Uuid, String>,
    /// Writing failed once: journaling stops (the run goes on; the bound is
    /// then the hand-off window).
    broken: bool,
}

impl Journal {
    /// A new journal for `worker` in `dir` (created 0700), its first segment
    /// created 0600 and locked.
    pub(super) fn create(dir: &Path, worker: &str) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        set_mode(dir, 0o700);
        let (file, path) = new_segment(dir, worker, 0)?;
        let journal = Self {
            dir: dir.to_path_buf(),
            worker: worker.to_string(),
            rotate_at: ROTATE_AT,
            inner: Mutex::new(Segment {
                file,
                path,
                seq: 0,
                bytes: 0,
                open: HashMap::new(),
                broken: false,
            }),
        };
        journal.append(&format!("worker {worker}\n"), None);
        Ok(journal)
    }

    /// Claimed and handed to this worker (the claim answered them).
    pub(super) fn handing(&self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        let mut lines = String::with_capacity(ids.len() * 42);
        for id in ids {
            lines.push_str(&format!("hand {id}\n"));
        }
        let mut s = self.lock();
        if s.broken {
            return;
        }
        for id in ids {
            s.open.insert(*id, format!("hand {id}\n"));
        }
        write_locked(&mut s, &lines);
    }

    /// The SMTP transaction of `id` is about to start.
    pub(super) fn started(&self, id: Uuid) {
        let line = format!("start {id}\n");
        self.append(&line, Some(id));
    }

    /// The final reply for `id` (or `pending`: refused for now, not taken).
    pub(super) fn done(&self, id: Uuid, status: EmailStatus, reply: Option<&str>) {
        let reply: String = reply
            .unwrap_or("")
            .chars()
            .map(|c| if c.is_control() { ' ' } else { c })
            .collect();
        let mut cut = reply.len().min(MAX_REPLY);
        while !reply.is_char_boundary(cut) {
            cut -= 1;
        }
        let line = format!("done {id} {} {}\n", status.as_str(), &reply[..cut]);
        self.append(&line, Some(id));
    }

    /// These outcomes are in the database: forgotten (rotating the file
    /// once it is big).
    pub(super) fn recorded(&self, ids: impl Iterator<Item = Uuid>) {
        let mut s = self.lock();
        for id in ids {
            s.open.remove(&id);
        }
        if s.broken || s.bytes < self.rotate_at {
            return;
        }
        let seq = s.seq + 1;
        let Ok((file, path)) = new_segment(&self.dir, &self.worker, seq) else {
            return;
        };
        let old = std::mem::replace(&mut s.path, path);
        // The old segment stays locked until its name is gone, so that no
        // other run takes it for a dead worker's.
        let old_file = std::mem::replace(&mut s.file, file);
        s.seq = seq;
        s.bytes = 0;
        let mut carried = format!("worker {}\n", self.worker);
        for line in s.open.values() {
            carried.push_str(line);
        }
        write_locked(&mut s, &carried);
        if !s.broken {
            let _ = std::fs::remove_file(old);
        }
        drop(old_file);
    }

    /// The worker is done: its journal goes, unless outcomes the database
    /// did not take are still in it (the next run records them).
    pub(super) fn remove(&self) {
        let s = self.lock();
        if s.open.is_empty() {
            let _ = std::fs::remove_file(&s.path);
        }
    }

    fn append(&self, line: &str, id: Option<Uuid>) {
        let mut s = self.lock();
        if s.broken {
            return;
        }
        if let Some(id) = id {
            s.open.insert(id, line.to_string());
        }
        write_locked(&mut s, line);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Segment> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }
}

fn write_locked(s: &mut Segment, text: &str) {
    match s.file.write_all(text.as_bytes()) {
        Ok(()) => s.bytes += text.len() as u64,
        Err(_) => s.broken = true,
    }
}

fn new_segment(dir: &Path, worker: &str, seq: u32) -> std::io::Result<(File, PathBuf)> {
    let name: String = worker
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let path = dir.join(format!("{name}.{seq}.journal"));
    let file = OpenOptions::new()
        .create_new(true)
        .append(true)
        .mode(0o600)
        .open(&path)?;
    if !try_lock(&file) {
        return Err(std::io::Error::other("journal locked"));
    }
    Ok((file, path))
}

fn try_lock(file: &File) -> bool {
    // SAFETY: flock on a file descriptor this process owns.
    unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) == 0 }
}

fn set_mode(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

/// What a dead worker's journal says.
#[derive(Debug, Default, PartialEq)]
pub(super) struct Replay {
    pub worker: Option<String>,
    /// Final replies heard (and `pending`: refused for now, or never tried).
    pub outcomes: Vec<(Uuid, EmailStatus, String)>,
    /// Started, no reply: their outcome stays unknown.
    pub started: Vec<Uuid>,
    /// Lines ignored.
    pub bad_lines: usize,
}

enum Last {
    Handed,
    Started,
    Done(EmailStatus, String),
}

/// Reads a journal's text: the last word on each email counts.
pub(super) fn parse(text: &str) -> Replay {
    let mut replay = Replay::default();
    let mut last: HashMap<Uuid, Last> = HashMap::new();
    let mut order: Vec<Uuid> = Vec::new();
    for line in text.lines() {
        if line.is_empty() {
            continue;
        }
        let (word, rest) = line.split_once(' ').unwrap_or((line, ""));
        let (id_text, tail) = rest.split_once(' ').unwrap_or((rest, ""));
        let parsed = match word {
            "worker" if replay.worker.is_none() && valid_worker(rest) => {
                replay.worker = Some(rest.to_string());
                continue;
            }
            "hand" if tail.is_empty() => Uuid::parse_str(id_text).ok().map(|id| (id, Last::Handed)),
            "start" if tail.is_empty() => {
                Uuid::parse_str(id_text).ok().map(|id| (id, Last::Started))
            }
            "done" => {
                let (status, reply) = tail.split_once(' ').unwrap_or((tail, ""));
                let status = match status {
                    "sent" => Some(EmailStatus::Sent),
                    "bounced" => Some(EmailStatus::Bounced),
                    "failed" => Some(EmailStatus::Failed),
                    "pending" => Some(EmailStatus::Pending),
                    _ => None,
                };
                match (Uuid::parse_str(id_text).ok(), status) {
                    (Some(id), Some(status)) => Some((
                        id,
                        Last::Done(status, reply.chars().take(MAX_REPLY).collect()),
                    )),
                    _ => None,
                }
            }
            _ => None,
        };
        match parsed {
            Some((id, state)) => {
                if last.insert(id, state).is_none() {
                    order.push(id);
                }
            }
            None => replay.bad_lines += 1,
        }
    }
    for id in order {
        match last.remove(&id) {
            Some(Last::Handed) => replay
                .outcomes
                .push((id, EmailStatus::Pending, String::new())),
            Some(Last::Started) => replay.started.push(id),
            Some(Last::Done(status, reply)) => replay.outcomes.push((id, status, reply)),
            None => {}
        }
    }
    replay
}

fn valid_worker(w: &str) -> bool {
    !w.is_empty() && w.len() <= 200 && w.chars().all(|c| c.is_ascii_graphic())
}

/// A dead worker's journal, locked by this process until it is removed.
pub(super) struct DeadJournal {
    pub path: PathBuf,
    file: File,
}

impl DeadJournal {
    pub(super) fn text(&mut self) -> String {
        let mut bytes = Vec::new();
        let _ = self.file.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    }

    /// Replayed: gone.
    pub(super) fn remove(self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// The journals in `dir` whose worker is gone (their lock is free), oldest
/// segment first; each is locked so that no other run replays it too.
pub(super) fn dead_journals(dir: &Path) -> Vec<DeadJournal> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "journal"))
        .collect();
    paths.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    paths
        .into_iter()
        .filter_map(|path| {
            let file = OpenOptions::new().read(true).open(&path).ok()?;
            if !file.metadata().ok()?.is_file() || !try_lock(&file) {
                return None;
            }
            // Still the file of that name (not one its worker had just
            // rotated away and removed).
            use std::os::unix::fs::MetadataExt;
            let (held, named) = (file.metadata().ok()?, std::fs::metadata(&path).ok()?);
            if (held.dev(), held.ino()) != (named.dev(), named.ino()) {
                return None;
            }
            Some(DeadJournal { path, file })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_word_on_each_email_counts_and_bad_lines_are_counted_not_trusted() {
        let a = Uuid::new_v4();
        let b = Uuid::new_v4();
        let c = Uuid::new_v4();
        let d = Uuid::new_v4();
        let text = format!(
            "worker h:1:abc\nhand {a}\nhand {b}\nhand {c}\nhand {d}\nstart {a}\ndone {a} sent 250 2.0.0 ok queued\n\
             start {b}\nstart {c}\ndone {c} pending 451 later\nstart {c}\n\
             done {d} delivered 250\nhand not-a-uuid\n\u{0}\u{7f}garbage\ndone {a}\nworker other\n"
        );
        let r = parse(&text);
        assert_eq!(r.worker.as_deref(), Some("h:1:abc"));
        assert_eq!(r.bad_lines, 5);
        assert_eq!(
            r.outcomes,
            vec![
                (a, EmailStatus::Sent, "250 2.0.0 ok queued".to_string()),
                (d, EmailStatus::Pending, String::new()),
            ]
        );
        assert_eq!(r.started, vec![b, c]);
    }

    #[test]
    fn rotation_keeps_only_the_emails_not_recorded_and_one_file() {
        let dir = tempfile::tempdir().unwrap();
        let mut journal = Journal::create(dir.path(), "host:2:tag").unwrap();
        journal.rotate_at = 4096;
        let ids: Vec<Uuid> = (0..2000).map(|_| Uuid::new_v4()).collect();
        for chunk in ids.chunks(50) {
            journal.handing(chunk);
            for id in chunk {
                journal.started(*id);
                journal.done(*id, EmailStatus::Sent, Some("250 ok"));
            }
            // All recorded but the last of each chunk.
            journal.recorded(chunk[..chunk.len() - 1].iter().copied());
        }
        let open: Vec<Uuid> = ids.chunks(50).map(|c| c[c.len() - 1]).collect();
        assert_eq!(
            journal.lock().open.len(),
            open.len(),
            "the index keeps the open ones only"
        );
        let files: Vec<_> = std::fs::read_dir(dir.path()).unwrap().collect();
        assert_eq!(files.len(), 1, "old segments are removed");
        let size = std::fs::metadata(&journal.lock().path).unwrap().len();
        assert!(size < 8192, "the file stays small: {size} bytes");
        drop(journal);
        let mut dead = dead_journals(dir.path());
        let r = parse(&dead[0].text());
        let mut replayed: Vec<Uuid> = r.outcomes.iter().map(|(id, _, _)| *id).collect();
        replayed.sort();
        let mut want = open.clone();
        want.sort();
        assert_eq!(replayed, want, "what was not recorded is carried over");
        assert!(r.outcomes.iter().all(|(_, s, _)| *s == EmailStatus::Sent));
        dead.pop().unwrap().remove();
    }

    #[test]
    fn a_journal_is_private_locked_while_alive_and_replayable_once_dead() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let journal = Journal::create(dir.path(), "host:1:tag").unwrap();
        let id = Uuid::new_v4();
        journal.handing(&[id]);
        journal.started(id);
        journal.done(id, EmailStatus::Sent, Some("250 ok\r\nX-Injected: yes"));
        let path = journal.lock().path.clone();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert!(
            dead_journals(dir.path()).is_empty(),
            "a live journal is not replayed"
        );
        drop(journal);
        let mut dead = dead_journals(dir.path());
        assert_eq!(dead.len(), 1);
        let r = parse(&dead[0].text());
        assert_eq!(r.bad_lines, 0);
        assert_eq!(
            r.outcomes,
            vec![(id, EmailStatus::Sent, "250 ok  X-Injected: yes".to_string())]
        );
        dead.pop().unwrap().remove();
        assert!(dead_journals(dir.path()).is_empty());
    }
}
