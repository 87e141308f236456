//! Hostile and broken files, as a new user would be sent them: each ends in
//! a clear error naming the file and the limit (exit 1, nothing written) or
//! in a correct import, within 60 s and 512 MiB, and never in a signal.
//! The files are built here, each under 4 MB: a shared-strings table that
//! declares nine billion entries, one that inflates to 3 GiB, an `.ods` row
//! repeated 100 000 × 100 times, oversized cells.

use crate::common;
use crate::workbooks;

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::ExitStatus;
use std::time::Duration;

use common::{new_user, Stack, User};
use flate2::{Compress, Compression, FlushCompress};

/// What one run of the binary did, and what it cost.
struct Run {
    status: ExitStatus,
    stdout: String,
    stderr: String,
    elapsed: Duration,
    peak_mib: f64,
}

const MAX_SECONDS: u64 = 60;
const MAX_MIB: f64 = 512.0;

/// Runs mailsync as `user` (or with no session for `--dry-run`), isolated
/// by the harness, with its address space capped at 4 GiB, well above the
/// 512 MiB goal; returns the exit status and the peak resident memory.
fn run(stack: &Stack, user: Option<&User>, args: &[&str], env: &[(&str, &str)]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = common::command_for(&stack.url, &stack.anon_key, dir.path());
    cmd.args(args);
    if let Some(user) = user {
        cmd.env("MAILSYNC_ACCESS_TOKEN", &user.token);
    }
    cmd.envs(env.iter().copied());
    let measured = common::output_measured(cmd, 4 << 30);
    Run {
        status: measured.output.status,
        stdout: common::stdout(&measured.output),
        stderr: common::stderr(&measured.output),
        elapsed: measured.elapsed,
        peak_mib: measured.peak_mib,
    }
}

impl Run {
    /// Ended by itself, within the time and memory of the goal.
    fn assert_bounded(&self, what: &str) {
        assert_eq!(
            self.status.signal(),
            None,
            "{what}: mailsync died by a signal\nstderr: {}",
            self.stderr
        );
        assert!(
            self.elapsed < Duration::from_secs(MAX_SECONDS),
            "{what}: took {:?}",
            self.elapsed
        );
        assert!(
            self.peak_mib < MAX_MIB,
            "{what}: peak memory {:.0} MiB",
            self.peak_mib
        );
        eprintln!(
            "{what}: exit {:?} in {:.2} s, peak {:.1} MiB",
            self.status.code(),
            self.elapsed.as_secs_f64(),
            self.peak_mib
        );
    }

    /// A refusal: exit 1, an error naming the file and each of `words`.
    fn assert_refused(&self, what: &str, file: &Path, words: &[&str]) {
        self.assert_bounded(what);
        assert_eq!(
            self.status.code(),
            Some(1),
            "{what}: expected exit 1\nstdout: {}\nstderr: {}",
            self.stdout,
            self.stderr
        );
        let name = file.file_name().unwrap().to_str().unwrap();
        assert!(
            self.stderr.contains(name),
            "{what}: the error does not name the file: {}",
            self.stderr
        );
        for word in words {
            assert!(
                self.stderr.contains(word),
                "{what}: the error does not say {word:?}: {}",
                self.stderr
            );
        }
    }
}

/// `import --dry-run FILE` (no session needed: nothing is sent).
fn dry_run(stack: &Stack, path: &Path) -> Run {
    run(stack, None, &["import", "--dry-run", path_str(path)], &[])
}

async fn contacts_count(user: &User) -> i64 {
    common::scalar(
        "select count(*) from public.contacts where user_id = $1",
        &[&user.id],
    )
    .await
}

// ---- building archives by hand, to say exactly what a hostile file says ----

/// Raw deflate of `input`, flushed so that the bytes stand alone.
fn deflate(c: &mut Compress, input: &[u8], flush: FlushCompress) -> Vec<u8> {
    let mut out = Vec::with_capacity(input.len() / 2 + 1024);
    let start_in = c.total_in();
    loop {
        let consumed = (c.total_in() - start_in) as usize;
        if out.capacity() - out.len() < 4096 {
            out.reserve(64 << 10);
        }
        let status = c.compress_vec(&input[consumed..], &mut out, flush).unwrap();
        let done_in = (c.total_in() - start_in) as usize == input.len();
        let room_left = out.capacity() > out.len();
        if done_in && room_left && status != flate2::Status::BufError {
            if flush == FlushCompress::Finish && status != flate2::Status::StreamEnd {
                continue;
            }
            return out;
        }
    }
}

/// One entry of a zip archive: its name, raw deflate data, the CRC and the
/// decompressed size its headers declare.
struct Entry {
    name: String,
    data: Vec<u8>,
    crc: u32,
    size: u32,
    stored: bool,
}

impl Entry {
    fn deflated(name: &str, content: &[u8]) -> Self {
        let mut c = Compress::new(Compression::default(), false);
        Self {
            name: name.into(),
            data: deflate(&mut c, content, FlushCompress::Finish),
            crc: crc32fast::hash(content),
            size: content.len() as u32,
            stored: false,
        }
    }

    fn stored(name: &str, content: &[u8]) -> Self {
        Self {
            name: name.into(),
            data: content.to_vec(),
            crc: crc32fast::hash(content),
            size: content.len() as u32,
            stored: true,
        }
    }
}

fn write_zip(path: &Path, entries: &[Entry]) {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let offset = out.len() as u32;
        let method: u16 = if e.stored { 0 } else { 8 };
        let header = |sig: u32, central: bool| {
            let mut h = Vec::new();
            h.extend(sig.to_le_bytes());
            if central {
                h.extend(20u16.to_le_bytes()); // made by
            }
            h.extend(20u16.to_le_bytes()); // needed
            h.extend(0u16.to_le_bytes()); // flags
            h.extend(method.to_le_bytes());
            h.extend(0u32.to_le_bytes()); // time, date
            h.extend(e.crc.to_le_bytes());
            h.extend((e.data.len() as u32).to_le_bytes());
            h.extend(e.size.to_le_bytes());
            h.extend((e.name.len() as u16).to_le_bytes());
            h.extend(0u16.to_le_bytes()); // extra
            if central {
                h.extend(0u16.to_le_bytes()); // comment
                h.extend(0u16.to_le_bytes()); // disk
                h.extend(0u16.to_le_bytes()); // internal attributes
                h.extend(0u32.to_le_bytes()); // external attributes
                h.extend(offset.to_le_bytes());
            }
            h.extend(e.name.as_bytes());
            h
        };
        out.extend(header(0x0403_4b50, false));
        out.extend(&e.data);
        central.extend(header(0x0201_4b50, true));
    }
    let central_offset = out.len() as u32;
    out.extend(&central);
    out.extend(0x0605_4b50u32.to_le_bytes());
    out.extend([0u8; 4]);
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((entries.len() as u16).to_le_bytes());
    out.extend((central.len() as u32).to_le_bytes());
    out.extend(central_offset.to_le_bytes());
    out.extend(0u16.to_le_bytes());
    std::fs::write(path, out).unwrap();
}

/// A valid small workbook's entries, with `shared_strings` in place of its
/// shared-strings table.
fn xlsx_with_shared_strings(path: &Path, shared_strings: Entry) {
    let mut book = rust_xlsxwriter::Workbook::new();
    let sheet = book.add_worksheet();
    sheet.write_string(0, 0, "Organisation").unwrap();
    sheet.write_string(0, 1, "Email").unwrap();
    sheet.write_string(1, 0, "Acme").unwrap();
    sheet.write_string(1, 1, "a@acme.fr").unwrap();
    let bytes = book.save_to_buffer().unwrap();
    let mut zip = zip::ZipArchive::new(std::io::Cursor::new(bytes)).unwrap();
    let mut entries = Vec::new();
    let mut replacement = Some(shared_strings);
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().into_owned();
        if name == "xl/sharedStrings.xml" {
            entries.push(replacement.take().unwrap());
            continue;
        }
        let mut content = Vec::new();
        std::io::Read::read_to_end(&mut f, &mut content).unwrap();
        entries.push(Entry::deflated(&name, &content));
    }
    assert!(replacement.is_none(), "the workbook has no shared strings");
    write_zip(path, &entries);
}

const SST_OPEN: &str = r#"<?xml version="1.0" encoding="UTF-8" standalone="yes"?>
<sst xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main""#;

/// Shared strings that declare nine billion entries and hold four.
fn nine_billion_strings(path: &Path) {
    let xml = format!(
        r#"{SST_OPEN} count="9000000000" uniqueCount="9000000000"><si><t>Organisation</t></si><si><t>Email</t></si><si><t>Acme</t></si><si><t>a@acme.fr</t></si></sst>"#
    );
    xlsx_with_shared_strings(
        path,
        Entry::deflated("xl/sharedStrings.xml", xml.as_bytes()),
    );
}

/// Shared strings that inflate to 3 GiB: one string of 3 GiB, as 3 072
/// copies of one deflated MiB. `declared` is the size the headers claim.
fn three_gib_strings(path: &Path, declared: Option<u32>) {
    let mut c = Compress::new(Compression::best(), false);
    let head = format!(
        r#"{SST_OPEN} count="4" uniqueCount="4"><si><t>Organisation</t></si><si><t>Email</t></si><si><t>Acme</t></si><si><t>"#
    );
    let tail = b"</t></si></sst>";
    let mib = vec![b'a'; 1 << 20];
    let copies = 3072;
    let mut data = deflate(&mut c, head.as_bytes(), FlushCompress::Full);
    let block = deflate(&mut c, &mib, FlushCompress::Full);
    for _ in 0..copies {
        data.extend(&block);
    }
    data.extend(deflate(&mut c, tail, FlushCompress::Finish));
    let mut crc = crc32fast::Hasher::new();
    crc.update(head.as_bytes());
    let mut one = crc32fast::Hasher::new();
    one.update(&mib);
    for _ in 0..copies {
        crc.combine(&one);
    }
    crc.update(tail);
    let size = head.len() as u64 + (copies as u64) * (1 << 20) + tail.len() as u64;
    let entry = Entry {
        name: "xl/sharedStrings.xml".into(),
        data,
        crc: crc.finalize(),
        size: declared.unwrap_or(u32::try_from(size).unwrap()),
        stored: false,
    };
    xlsx_with_shared_strings(path, entry);
}

/// An `.ods` whose sheet is `rows` as written in content.xml.
fn ods(path: &Path, rows: &str) {
    let content = format!(
        r#"<?xml version="1.0" encoding="UTF-8"?><office:document-content xmlns:office="urn:oasis:names:tc:opendocument:xmlns:office:1.0" xmlns:table="urn:oasis:names:tc:opendocument:xmlns:table:1.0" xmlns:text="urn:oasis:names:tc:opendocument:xmlns:text:1.0" office:version="1.2"><office:body><office:spreadsheet><table:table table:name="Sheet1">{rows}</table:table></office:spreadsheet></office:body></office:document-content>"#
    );
    let manifest = r#"<?xml version="1.0" encoding="UTF-8"?><manifest:manifest xmlns:manifest="urn:oasis:names:tc:opendocument:xmlns:manifest:1.0" manifest:version="1.2"><manifest:file-entry manifest:full-path="/" manifest:media-type="application/vnd.oasis.opendocument.spreadsheet"/><manifest:file-entry manifest:full-path="content.xml" manifest:media-type="text/xml"/></manifest:manifest>"#;
    write_zip(
        path,
        &[
            Entry::stored(
                "mimetype",
                b"application/vnd.oasis.opendocument.spreadsheet",
            ),
            Entry::deflated("META-INF/manifest.xml", manifest.as_bytes()),
            Entry::deflated("content.xml", content.as_bytes()),
        ],
    );
}

fn cell(text: &str) -> String {
    format!(
        r#"<table:table-cell office:value-type="string"><text:p>{text}</text:p></table:table-cell>"#
    )
}

fn path_str(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn file(dir: &Path, name: &str) -> PathBuf {
    dir.join(name)
}

#[tokio::test]
async fn shared_strings_declaring_nine_billion_entries_are_refused() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "nine-billion.xlsx");
    nine_billion_strings(&path);
    assert!(std::fs::metadata(&path).unwrap().len() < 4 << 20);
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused(
        "sst count=9 000 000 000",
        &path,
        &["9 000 000 000", "shared-strings", "--max-shared-strings"],
    );
    assert_eq!(contacts_count(&user).await, 0);
}

#[tokio::test]
async fn shared_strings_inflating_to_three_gib_are_refused_early() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    // Honest headers (3 GiB declared): refused before inflating anything.
    let path = file(dir.path(), "honest.xlsx");
    three_gib_strings(&path, None);
    assert!(std::fs::metadata(&path).unwrap().len() < 4 << 20);
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused(
        "3 GiB declared",
        &path,
        &["sharedStrings.xml", "256 MiB", "--max-entry-size"],
    );
    // Headers that claim 1 KiB: the entry is read no further than that.
    let path = file(dir.path(), "lying.xlsx");
    three_gib_strings(&path, Some(1024));
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused(
        "3 GiB declared as 1 KiB",
        &path,
        &["larger than its declared uncompressed size"],
    );
    assert_eq!(contacts_count(&user).await, 0);
}

#[tokio::test]
async fn an_ods_row_repeated_ten_million_times_is_refused() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "repeated.ods");
    ods(
        &path,
        r#"<table:table-row table:number-rows-repeated="100000"><table:table-cell table:number-columns-repeated="100" office:value-type="string"><text:p>x@y.fr</text:p></table:table-cell></table:table-row>"#,
    );
    let size = std::fs::metadata(&path).unwrap().len();
    assert!(size < 1024, "{size} bytes");
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused(
        "ods 100 000 × 100",
        &path,
        &[
            "10 000 000 cells",
            "--max-cells",
            "MAILSYNC_IMPORT_MAX_CELLS",
        ],
    );
    assert_eq!(contacts_count(&user).await, 0);

    // Just under the limit, the sheet is read within the memory bound.
    let path = file(dir.path(), "just-under.ods");
    ods(
        &path,
        r#"<table:table-row table:number-rows-repeated="19999"><table:table-cell table:number-columns-repeated="100" office:value-type="string"><text:p>x@y.fr</text:p></table:table-cell></table:table-row>"#,
    );
    let r = run(
        &stack,
        None,
        &["--json", "import", "--dry-run", path_str(&path)],
        &[],
    );
    r.assert_bounded("ods 19 999 × 100");
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["rows"], 19_999);
}

#[tokio::test]
async fn repeated_ods_rows_within_the_limit_import_and_trailing_empty_repeats_cost_nothing() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "libreoffice.ods");
    // As LibreOffice writes a sheet: the data, then the rest of the sheet
    // as empty rows and columns repeated to its full size.
    let rows = format!(
        r#"<table:table-row>{}{}</table:table-row><table:table-row table:number-rows-repeated="3">{}{}<table:table-cell table:number-columns-repeated="1022"/></table:table-row><table:table-row>{}{}</table:table-row><table:table-row table:number-rows-repeated="1048570"><table:table-cell table:number-columns-repeated="1024"/></table:table-row>"#,
        cell("Organisation"),
        cell("Email"),
        cell("Acme"),
        cell("same@acme.fr"),
        cell("Globex"),
        cell("g@globex.fr"),
    );
    ods(&path, &rows);
    let r = run(
        &stack,
        Some(&user),
        &["--json", "import", path_str(&path)],
        &[],
    );
    r.assert_bounded("libreoffice-style ods");
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(report["rows"], 4);
    assert_eq!(report["duplicates"], 2);
    assert_eq!(report["contacts_created"], 2);
    assert_eq!(contacts_count(&user).await, 2);
}

#[tokio::test]
async fn cells_and_cell_length_are_bounded_and_the_limits_can_be_raised() {
    let stack = common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    // A cell longer than Excel allows.
    let long = file(dir.path(), "long-cell.xlsx");
    {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet.write_string(0, 0, "Acme").unwrap();
        sheet.write_string(0, 1, "a@acme.fr").unwrap();
        sheet.write_string(1, 0, "x".repeat(32_767)).unwrap();
        sheet.write_string(1, 1, "b@acme.fr").unwrap();
        book.save(&long).unwrap();
    }
    // calamine reads an over-long cell that a writer could not produce; the
    // limit is lowered instead, and then raised.
    let lowered = [("MAILSYNC_IMPORT_MAX_CELL_LENGTH", "1000")];
    let r = run(
        &stack,
        None,
        &["import", "--dry-run", path_str(&long)],
        &lowered,
    );
    r.assert_refused(
        "long cell",
        &long,
        &["cell A2", "32 767 characters", "--max-cell-length"],
    );
    let r = dry_run(&stack, &long);
    r.assert_bounded("long cell, default limit");
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);

    // Cells per sheet, in a CSV streamed row by row.
    let csv = file(dir.path(), "cells.csv");
    let mut f = std::fs::File::create(&csv).unwrap();
    for i in 0..100 {
        writeln!(f, "Org {i},p{i}@example.fr").unwrap();
    }
    drop(f);
    let r = run(
        &stack,
        None,
        &["import", "--dry-run", path_str(&csv)],
        &[("MAILSYNC_IMPORT_MAX_CELLS", "150")],
    );
    r.assert_refused("cells", &csv, &["more than 150 cells", "--max-cells"]);
    let r = run(
        &stack,
        None,
        &["import", "--dry-run", path_str(&csv)],
        &[("MAILSYNC_IMPORT_MAX_CELLS", "200")],
    );
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);

    // A limit that is not a number is a usage error.
    let r = run(
        &stack,
        None,
        &["import", "--dry-run", path_str(&csv)],
        &[("MAILSYNC_IMPORT_MAX_CELLS", "lots")],
    );
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--max-cells"), "{}", r.stderr);

    // The flag does what the variable does.
    let r = run(
        &stack,
        None,
        &["import", "--dry-run", path_str(&csv), "--max-cells", "150"],
        &[],
    );
    r.assert_refused("cells (flag)", &csv, &["more than 150 cells"]);
}

#[tokio::test]
async fn rejects_that_resolve_to_the_input_file_are_refused() {
    let stack = common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    let input = file(dir.path(), "in.csv");
    let content = "Organisation,Email\nAcme,a@acme.fr\nBad,not-an-email\n";
    std::fs::write(&input, content).unwrap();
    std::fs::create_dir(dir.path().join("sub")).unwrap();
    let symlink = file(dir.path(), "link.csv");
    std::os::unix::fs::symlink(&input, &symlink).unwrap();
    let hardlink = file(dir.path(), "hard.csv");
    std::fs::hard_link(&input, &hardlink).unwrap();
    let dotted = dir.path().join("sub/../in.csv");
    let cases = [
        ("the same path", input.clone(), input.clone()),
        ("another spelling", input.clone(), dotted),
        ("a symbolic link to it", input.clone(), symlink.clone()),
        ("a hard link to it", input.clone(), hardlink),
        ("the input named through a link", symlink, input.clone()),
    ];
    for (what, file, rejects) in cases {
        let r = run(
            &stack,
            None,
            &[
                "import",
                "--dry-run",
                path_str(&file),
                "--rejects",
                path_str(&rejects),
            ],
            &[],
        );
        assert_eq!(r.status.code(), Some(2), "{what}: {}", r.stderr);
        assert!(r.stderr.contains("--rejects"), "{what}: {}", r.stderr);
        assert_eq!(std::fs::read_to_string(&input).unwrap(), content, "{what}");
    }
    let elsewhere = dir.path().join("sub/rejects.csv");
    let r = run(
        &stack,
        None,
        &[
            "import",
            "--dry-run",
            path_str(&input),
            "--rejects",
            path_str(&elsewhere),
        ],
        &[],
    );
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    let written = std::fs::read_to_string(&elsewhere).unwrap();
    assert!(written.contains("not-an-email"), "{written}");
    assert_eq!(std::fs::read_to_string(&input).unwrap(), content);
}

const CLIPBOARD: &str = "\u{1b}]52;c;SGVsbG8=\u{7}";
const CLEAR: &str = "\u{1b}[2J";

fn assert_no_control(what: &str, text: &str) {
    assert!(
        !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t'),
        "{what}: printed a control character raw: {text:?}"
    );
}

#[tokio::test]
async fn terminal_control_sequences_in_cells_are_printed_escaped_and_stored_as_they_are() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "escapes.xlsx");
    {
        let mut book = rust_xlsxwriter::Workbook::new();
        let sheet = book.add_worksheet();
        sheet
            .write_string(0, 0, format!("Acme{CLIPBOARD}"))
            .unwrap();
        sheet.write_string(0, 1, "a@acme.fr").unwrap();
        sheet.write_string(1, 0, format!("Clear{CLEAR}")).unwrap();
        sheet
            .write_string(1, 1, format!("not-an-email{CLEAR}"))
            .unwrap();
        book.save(&path).unwrap();
    }

    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert_no_control("import table", &r.stdout);
    assert_no_control("import notes", &r.stderr);
    assert!(r.stdout.contains(r"\u{1b}[2J"), "{}", r.stdout);

    // The data is kept exactly; --json stays valid JSON and carries it.
    let r = run(
        &stack,
        Some(&user),
        &["--json", "import", "--dry-run", path_str(&path)],
        &[],
    );
    assert_no_control("import --json", &r.stdout);
    let report: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(
        report["rejects"][0]["email"],
        format!("not-an-email{CLEAR}")
    );

    let r = run(&stack, Some(&user), &["contacts", "list"], &[]);
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert_no_control("contacts list", &r.stdout);
    assert!(
        r.stdout.contains(r"Acme\u{1b}]52;c;SGVsbG8=\u{7}"),
        "{}",
        r.stdout
    );
    let r = run(&stack, Some(&user), &["--json", "contacts", "list"], &[]);
    assert_no_control("contacts list --json", &r.stdout);
    let listed: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    assert_eq!(listed[0]["organization_name"], format!("Acme{CLIPBOARD}"));

    // A file name is data too: errors print it escaped.
    let evil = dir.path().join(format!("evil{CLEAR}.csv"));
    let r = dry_run(&stack, &evil);
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    assert_no_control("error", &r.stderr);
    assert!(r.stderr.contains(r"evil\u{1b}[2J.csv"), "{}", r.stderr);
}

// ---- .xls: the OLE container and the BIFF records inside it ----

/// `name` in `dir`: the workbook `stream` in an OLE container.
fn xls_file(dir: &Path, name: &str, stream: &[u8]) -> PathBuf {
    let path = file(dir, name);
    write_xls(&path, &workbooks::compound_file(stream, 0));
    path
}

fn write_xls(path: &Path, ole: &workbooks::Ole) {
    std::fs::write(path, &ole.bytes).unwrap();
    assert!(ole.bytes.len() <= 4 << 20, "{} bytes", ole.bytes.len());
}

#[tokio::test]
async fn an_xls_built_here_imports_so_its_hostile_variants_test_the_limits() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let path = file(dir.path(), "built.xls");
    let stream = workbooks::contacts(&[("Organisation", "Email"), ("Acme", "a@acme.fr")]);
    write_xls(&path, &workbooks::compound_file(&stream, 0));
    let r = run(
        &stack,
        Some(&user),
        &["--json", "import", path_str(&path)],
        &[],
    );
    r.assert_bounded("built xls");
    assert_eq!(r.status.code(), Some(0), "{}", r.stderr);
    assert_eq!(contacts_count(&user).await, 1);
}

#[tokio::test]
async fn xls_shared_strings_repeated_by_many_cells_are_refused() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    // One 32 000-character shared string named by 250 000 cells: 3.5 MB of
    // records, 8 GB of text once each cell holds its own copy.
    let long = "x".repeat(32_000);
    let mut cells = Vec::new();
    for row in 0..250_000u32 {
        cells.extend(workbooks::label_sst(
            (row % 65_536) as u16,
            (row / 65_536) as u16,
            0,
        ));
    }
    let stream = workbooks::workbook(&workbooks::sst((1, 1), &[&long]), &[cells], &[("S", 0)]);
    let path = xls_file(dir.path(), "repeated-strings.xls", &stream);
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused(
        "one shared string in 250 000 cells",
        &path,
        &["shared strings", "256 MiB", "--max-entry-size"],
    );
    assert_eq!(contacts_count(&user).await, 0);
}

#[tokio::test]
async fn xls_declared_counts_and_dimensions_are_refused() {
    let stack = common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    // An SST that declares four billion strings and holds two.
    let stream = workbooks::workbook(
        &workbooks::sst((4_000_000_000, 4_000_000_000), &["Acme", "a@acme.fr"]),
        &[[workbooks::label_sst(0, 0, 0), workbooks::label_sst(0, 1, 1)].concat()],
        &[("S", 0)],
    );
    let path = xls_file(dir.path(), "sst-count.xls", &stream);
    let r = dry_run(&stack, &path);
    r.assert_refused(
        "sst count 4 000 000 000",
        &path,
        &["4 000 000 000", "--max-shared-strings"],
    );
    // DIMENSIONS that declare every row and column of a sheet.
    let stream = workbooks::workbook(
        &[],
        &[[
            workbooks::dimensions((0, 1_048_576), (0, 256)),
            workbooks::label(0, 0, "Acme"),
        ]
        .concat()],
        &[("S", 0)],
    );
    let path = xls_file(dir.path(), "dimensions.xls", &stream);
    let r = dry_run(&stack, &path);
    r.assert_refused(
        "dimensions 1 048 576 × 256",
        &path,
        &["cells", "--max-cells"],
    );
    // DIMENSIONS whose last row comes before its first.
    let stream = workbooks::workbook(
        &[],
        &[[
            workbooks::dimensions((10, 5), (0, 2)),
            workbooks::label(0, 0, "Acme"),
        ]
        .concat()],
        &[("S", 0)],
    );
    let path = xls_file(dir.path(), "backwards.xls", &stream);
    let r = dry_run(&stack, &path);
    r.assert_bounded("dimensions backwards");
    assert_eq!(r.status.code(), Some(1), "{}", r.stderr);
    // Twenty sheet records naming one sheet of 1.8 million cells: each is
    // parsed and held on its own.
    let sheet = [
        workbooks::label(0, 0, "Acme"),
        workbooks::label(7_000, 255, "a@acme.fr"),
    ]
    .concat();
    let names: Vec<String> = (0..20).map(|i| format!("S{i}")).collect();
    let bound: Vec<(&str, usize)> = names.iter().map(|n| (n.as_str(), 0)).collect();
    let stream = workbooks::workbook(&[], &[sheet], &bound);
    let path = xls_file(dir.path(), "aliases.xls", &stream);
    let r = dry_run(&stack, &path);
    r.assert_refused("one sheet named 20 times", &path, &["cells", "--max-cells"]);
}

#[tokio::test]
async fn a_damaged_xls_container_is_refused_without_looping() {
    let stack = common::ready().await;
    let user = new_user(&stack).await;
    let dir = tempfile::tempdir().unwrap();
    let stream = workbooks::contacts(&[("Organisation", "Email"), ("Acme", "a@acme.fr")]);
    let valid = workbooks::compound_file(&stream, 0);
    let damaged = "OLE container is damaged";

    // Truncated: half the file.
    let path = file(dir.path(), "truncated.xls");
    std::fs::write(&path, &valid.bytes[..valid.bytes.len() / 2]).unwrap();
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused("truncated", &path, &["not a readable workbook"]);

    // The directory's chain of sectors points back to itself.
    let mut ole = workbooks::compound_file(&stream, 0);
    ole.set_fat(ole.dir_sector, ole.dir_sector);
    let path = file(dir.path(), "directory-loop.xls");
    write_xls(&path, &ole);
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused("directory chain loop", &path, &[damaged, "loops"]);

    // The stream's chain loops and the stream declares 4 GiB.
    let mut ole = workbooks::compound_file(&stream, 0);
    let last = *ole.stream_sectors.last().unwrap();
    ole.set_fat(last, ole.stream_sectors[0]);
    ole.set_size(1, 0xFFFF_FF00);
    let path = file(dir.path(), "stream-loop.xls");
    write_xls(&path, &ole);
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused(
        "stream chain loop, 4 GiB declared",
        &path,
        &[damaged, "loops"],
    );

    // A DIFAT chain that loops on one sector which names the first FAT
    // sector 127 times: each pass would read the FAT again (4 MiB of file,
    // half a GiB of allocation table).
    let mut ole = workbooks::compound_file(&stream, 4_150_000);
    let difat = *ole.stream_sectors.last().unwrap() + 1;
    let at = workbooks::Ole::at(difat);
    for i in 0..127 {
        ole.bytes[at + i * 4..at + i * 4 + 4].copy_from_slice(&0u32.to_le_bytes());
    }
    ole.bytes[at + 508..at + 512].copy_from_slice(&difat.to_le_bytes());
    ole.set_header_u32(68, difat);
    ole.set_header_u32(72, 1);
    let path = file(dir.path(), "difat-loop.xls");
    write_xls(&path, &ole);
    let r = run(&stack, Some(&user), &["import", path_str(&path)], &[]);
    r.assert_refused("DIFAT loop", &path, &[damaged]);
    assert_eq!(contacts_count(&user).await, 0);
}

#[tokio::test]
async fn a_workbook_named_for_another_format_is_read_only_as_that_format() {
    let stack = common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    // The nine-billion-strings .xlsx, named .XLS: checked as an .xls, it
    // must not then be read as the .xlsx it is.
    let xlsx = file(dir.path(), "nine-billion.xlsx");
    nine_billion_strings(&xlsx);
    for name in [
        "contacts.XLS",
        "contacts.xls",
        "contacts.ODS",
        "contacts.XLSB",
    ] {
        let path = file(dir.path(), name);
        std::fs::copy(&xlsx, &path).unwrap();
        let r = dry_run(&stack, &path);
        r.assert_refused(name, &path, &["not a readable workbook"]);
    }
}

#[tokio::test]
async fn an_ods_cell_of_long_text_repeated_a_million_times_is_refused() {
    let stack = common::ready().await;
    let dir = tempfile::tempdir().unwrap();
    // 1 000 000 cells, under the cells limit, each given its own copy of
    // 30 000 characters: 30 GB from a file of a few KB.
    let path = file(dir.path(), "repeated-text.ods");
    ods(
        &path,
        &format!(
            r#"<table:table-row table:number-rows-repeated="10000"><table:table-cell table:number-columns-repeated="100" office:value-type="string"><text:p>{}</text:p></table:table-cell></table:table-row>"#,
            "y".repeat(30_000)
        ),
    );
    assert!(std::fs::metadata(&path).unwrap().len() < 4096);
    let r = dry_run(&stack, &path);
    r.assert_refused(
        "ods 30 000 characters × 1 000 000",
        &path,
        &["repeats its cells' text", "256 MiB", "--max-entry-size"],
    );
}
