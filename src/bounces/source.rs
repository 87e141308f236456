//! Messages read from files: an .eml file, a Maildir (`cur/` and `new/`), an
//! mbox file (`From ` lines between messages, mboxo/mboxrd `>From `
//! unescaped), or a directory searched recursively for .eml and .mbox
//! files and Maildirs. Each message comes with its origin (`path`, or
//! `path:N` for the Nth message of an mbox) and at most [`MAX_INPUT`] of its
//! bytes, plus its full size: memory stays bounded whatever the files, and
//! an mbox is streamed, never held whole.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::{Path, PathBuf};

use super::MAX_INPUT;

/// Directories deeper than this below a PATH are not searched (a symlink
/// loop ends here).
const MAX_DEPTH: usize = 32;
/// The longest line of an mbox kept whole; longer lines keep their start
/// (no more than a message keeps anyway).
const MAX_LINE: usize = MAX_INPUT;

/// One message and where it came from.
#[derive(Debug, Clone)]
pub struct SourceMessage {
    /// `path` or `path:N` (N counts from 1).
    pub origin: String,
    /// The message's first bytes, at most [`MAX_INPUT`].
    pub raw: Vec<u8>,
    /// The message's full size in bytes.
    pub size: u64,
}

/// A file or directory that could not be read.
#[derive(Debug)]
pub struct SourceError {
    pub path: PathBuf,
    pub error: io::Error,
}

type Visit<'a> = dyn FnMut(SourceMessage) -> Result<(), SourceError> + 'a;

/// Calls `visit` for each message under `path`, in a stable order (names
/// sorted). An error stops the reading.
pub fn read(path: &Path, visit: &mut Visit<'_>) -> Result<(), SourceError> {
    let fail = |error| SourceError {
        path: path.to_path_buf(),
        error,
    };
    let meta = std::fs::metadata(path).map_err(fail)?;
    if meta.is_dir() {
        read_dir(path, 0, visit)
    } else if is_mbox(path).map_err(fail)? {
        read_mbox(path, visit)
    } else {
        read_file(path, visit)
    }
}

fn read_dir(dir: &Path, depth: usize, visit: &mut Visit<'_>) -> Result<(), SourceError> {
    let fail = |error| SourceError {
        path: dir.to_path_buf(),
        error,
    };
    if depth > MAX_DEPTH {
        return Ok(());
    }
    let mut entries: Vec<(PathBuf, bool)> = std::fs::read_dir(dir)
        .map_err(fail)?
        .map(|entry| {
            let entry = entry.map_err(fail)?;
            let is_dir = std::fs::metadata(entry.path())
                .map(|m| m.is_dir())
                .unwrap_or(false);
            Ok((entry.path(), is_dir))
        })
        .collect::<Result<_, SourceError>>()?;
    entries.sort();
    let is_maildir = entries
        .iter()
        .any(|(p, d)| *d && matches!(p.file_name().and_then(|n| n.to_str()), Some("cur" | "new")));
    for (path, is_dir) in &entries {
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if *is_dir {
            if is_maildir && matches!(name, "cur" | "new") {
                read_maildir_folder(path, visit)?;
            } else if !(is_maildir && name == "tmp") {
                read_dir(path, depth + 1, visit)?;
            }
            continue;
        }
        let extension = path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase);
        match extension.as_deref() {
            Some("eml") => read_file(path, visit)?,
            Some("mbox") => read_mbox(path, visit)?,
            _ => {}
        }
    }
    Ok(())
}

/// Every file of a Maildir's `cur/` or `new/`, whatever its name.
fn read_maildir_folder(dir: &Path, visit: &mut Visit<'_>) -> Result<(), SourceError> {
    let fail = |error| SourceError {
        path: dir.to_path_buf(),
        error,
    };
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(fail)?
        .filter_map(|entry| entry.ok().map(|e| e.path()))
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    for file in files {
        read_file(&file, visit)?;
    }
    Ok(())
}

fn read_file(path: &Path, visit: &mut Visit<'_>) -> Result<(), SourceError> {
    let fail = |error| SourceError {
        path: path.to_path_buf(),
        error,
    };
    let file = File::open(path).map_err(fail)?;
    let size = file.metadata().map_err(fail)?.len();
    let mut raw = Vec::with_capacity(size.min(MAX_INPUT as u64) as usize);
    file.take(MAX_INPUT as u64)
        .read_to_end(&mut raw)
        .map_err(fail)?;
    let size = size.max(raw.len() as u64);
    visit(SourceMessage {
        origin: path.display().to_string(),
        raw,
        size,
    })
}

/// A file is an mbox when it starts with a `From ` line.
fn is_mbox(path: &Path) -> io::Result<bool> {
    let mut start = [0u8; 5];
    let mut file = File::open(path)?;
    let mut read = 0;
    while read < start.len() {
        match file.read(&mut start[read..])? {
            0 => break,
            n => read += n,
        }
    }
    Ok(&start[..read] == b"From ")
}

/// Reads one line into `line` (at most [`MAX_LINE`] bytes of it kept);
/// returns the line's full length, 0 at the end of the file.
fn read_line(reader: &mut impl BufRead, line: &mut Vec<u8>) -> io::Result<usize> {
    line.clear();
    let mut total = 0;
    loop {
        let buffer = reader.fill_buf()?;
        if buffer.is_empty() {
            return Ok(total);
        }
        let (chunk, done) = match buffer.iter().position(|b| *b == b'\n') {
            Some(i) => (&buffer[..=i], true),
            None => (buffer, false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let used = chunk.len();
        total += used;
        reader.consume(used);
        if done {
            return Ok(total);
        }
    }
}

fn read_mbox(path: &Path, visit: &mut Visit<'_>) -> Result<(), SourceError> {
    let fail = |error| SourceError {
        path: path.to_path_buf(),
        error,
    };
    let mut reader = BufReader::with_capacity(256 * 1024, File::open(path).map_err(fail)?);
    let mut line = Vec::new();
    let mut current: Option<SourceMessage> = None;
    let mut count = 0;
    let mut previous_blank = true;
    loop {
        let length = read_line(&mut reader, &mut line).map_err(fail)?;
        if length == 0 {
            break;
        }
        if previous_blank && line.starts_with(b"From ") {
            if let Some(message) = current.take() {
                visit(finish(message))?;
            }
            count += 1;
            current = Some(SourceMessage {
                origin: format!("{}:{count}", path.display()),
                raw: Vec::new(),
                size: 0,
            });
            previous_blank = false;
            continue;
        }
        previous_blank = line == b"\n" || line == b"\r\n";
        let Some(message) = current.as_mut() else {
            continue;
        };
        // mboxrd: `>From `, `>>From ` ... lose one `>`; this also undoes
        // mboxo's escaping of `From ` lines.
        let quoted = line.iter().take_while(|b| **b == b'>').count();
        let content: &[u8] = if quoted > 0 && line[quoted..].starts_with(b"From ") {
            &line[1..]
        } else {
            &line
        };
        let extra = length - line.len();
        message.size += (content.len() + extra) as u64;
        let room = MAX_INPUT.saturating_sub(message.raw.len());
        message
            .raw
            .extend_from_slice(&content[..content.len().min(room)]);
    }
    if let Some(message) = current {
        visit(finish(message))?;
    }
    Ok(())
}

/// A message of an mbox without the blank line that separated it from the
/// next `From ` line.
fn finish(mut message: SourceMessage) -> SourceMessage {
    if message.size == message.raw.len() as u64 {
        for ending in [&b"\r\n"[..], b"\n"] {
            if message.raw.ends_with(ending)
                && message.raw[..message.raw.len() - ending.len()].ends_with(ending)
            {
                message.raw.truncate(message.raw.len() - ending.len());
                message.size -= ending.len() as u64;
                break;
            }
        }
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    fn messages(path: &Path) -> Vec<SourceMessage> {
        let mut found = Vec::new();
        read(path, &mut |m| {
            found.push(m);
            Ok(())
        })
        .unwrap();
        found
    }

    #[test]
    fn mbox_messages_are_split_and_unescaped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box");
        std::fs::write(
            &path,
            "From a@x Sat Dec  5 10:00:00 2026\nSubject: one\n\n>From here\n>>From there\nFrom the middle\n\nFrom b@x Sat Dec  5 10:01:00 2026\nSubject: two\n\nbody\n",
        )
        .unwrap();
        let found = messages(&path);
        assert_eq!(found.len(), 2);
        assert_eq!(found[0].origin, format!("{}:1", path.display()));
        assert_eq!(
            String::from_utf8_lossy(&found[0].raw),
            "Subject: one\n\nFrom here\n>From there\nFrom the middle\n"
        );
        assert_eq!(found[0].size, found[0].raw.len() as u64);
        assert_eq!(found[1].origin, format!("{}:2", path.display()));
        assert_eq!(
            String::from_utf8_lossy(&found[1].raw),
            "Subject: two\n\nbody\n"
        );
    }

    #[test]
    fn a_large_message_keeps_its_start_and_its_size() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("box.mbox");
        let body = "x".repeat(3 * MAX_INPUT);
        std::fs::write(
            &path,
            format!("From a@x Sat Dec  5 10:00:00 2026\nSubject: big\n\n{body}\n"),
        )
        .unwrap();
        let found = messages(&path);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].raw.len(), MAX_INPUT);
        assert!(found[0].size > 3 * MAX_INPUT as u64);
    }

    #[test]
    fn directories_give_eml_files_and_maildirs_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let maildir = dir.path().join("Maildir");
        for sub in ["cur", "new", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        std::fs::write(maildir.join("cur/1.host:2,S"), "Subject: cur\n\n").unwrap();
        std::fs::write(maildir.join("new/2.host"), "Subject: new\n\n").unwrap();
        std::fs::write(maildir.join("tmp/3.host"), "Subject: tmp\n\n").unwrap();
        std::fs::write(dir.path().join("a.eml"), "Subject: a\n\n").unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not mail").unwrap();
        let origins: Vec<String> = messages(dir.path())
            .into_iter()
            .map(|m| m.origin.replace(&dir.path().display().to_string(), ""))
            .collect();
        assert_eq!(
            origins,
            vec!["/Maildir/cur/1.host:2,S", "/Maildir/new/2.host", "/a.eml"]
        );
    }

    #[test]
    fn a_missing_path_is_an_error_naming_it() {
        let error = read(Path::new("/no/such/file.eml"), &mut |_| Ok(())).unwrap_err();
        assert_eq!(error.path, Path::new("/no/such/file.eml"));
    }
}
