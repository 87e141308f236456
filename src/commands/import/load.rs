//! The second pass of `mailsync import`: the winning rows, read again from
//! the sheet, sent in batches to `rpc/import_contacts`, with a progress bar
//! and a clean stop on Ctrl-C.

use std::collections::HashMap;
use std::time::Instant;

use futures_util::stream::{FuturesUnordered, StreamExt};
use indicatif::ProgressBar;
use serde::Serialize;

use super::first_pass::Scan;
use super::report::{BatchCounts, Report};
use super::validate::{classify, Classified};
use crate::error::{Error, Result};
use crate::output::Output;
use crate::spreadsheet::reader::Workbook;
use crate::supabase::rest::RestClient;
use crate::t;

pub enum Sent {
    All,
    Interrupted { next_row: u32 },
}

#[derive(Debug, Serialize)]
struct BatchRow {
    email: String,
    organization: Option<String>,
}

struct Batch {
    rows: Vec<BatchRow>,
    first_row: u32,
    last_row: u32,
}

/// A batch ready to send: its request body, built on the reader's thread.
struct Ready {
    args: serde_json::Value,
    rows: u64,
    first_row: u32,
    last_row: u32,
}

impl Batch {
    fn ready(self) -> Ready {
        Ready {
            rows: self.rows.len() as u64,
            args: serde_json::json!({ "rows": self.rows }),
            first_row: self.first_row,
            last_row: self.last_row,
        }
    }
}

/// Batches sent at once. Each email is in exactly one batch (the winner map
/// of the first pass), so batches are independent: their counts add up
/// exactly in any order, and organisations are inserted in one fixed order
/// by every batch, so concurrent batches wait for each other instead of
/// deadlocking. Two in flight keep the reader, the network and the database
/// busy at once without piling work on the server (`--in-flight` changes it;
/// 1 sends one batch at a time, as the first release did).
pub const DEFAULT_IN_FLIGHT: usize = 2;

/// The second pass: the winning rows, in batches, to the REST API.
pub async fn send(
    client: &RestClient,
    book: &Workbook,
    scan: Scan,
    batch_size: usize,
    in_flight_limit: usize,
    out: &Output,
    report: &mut Report,
) -> Result<Sent> {
    let unique = scan.unique();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Ready>>(2);
    {
        let book = book.clone();
        let columns = scan.columns;
        let header = scan.header_row;
        // Moved, not copied: at a million rows this map is the import's
        // largest allocation.
        let winners: HashMap<String, u32> = scan.winners;
        tokio::task::spawn_blocking(move || {
            let mut batch = Batch {
                rows: Vec::with_capacity(batch_size),
                first_row: 0,
                last_row: 0,
            };
            for row in book.rows() {
                let row = match row {
                    Ok(row) => row,
                    Err(e) => {
                        let _ = tx.blocking_send(Err(e));
                        return;
                    }
                };
                if header.is_some_and(|h| row.row <= h) {
                    continue;
                }
                if let Classified::Contact {
                    email,
                    organization,
                } = classify(&row, columns)
                {
                    if winners.get(&email) != Some(&row.row) {
                        continue;
                    }
                    if batch.rows.is_empty() {
                        batch.first_row = row.row;
                    }
                    batch.last_row = row.row;
                    batch.rows.push(BatchRow {
                        email,
                        organization,
                    });
                    if batch.rows.len() >= batch_size {
                        let full = std::mem::replace(
                            &mut batch,
                            Batch {
                                rows: Vec::with_capacity(batch_size),
                                first_row: 0,
                                last_row: 0,
                            },
                        );
                        if tx.blocking_send(Ok(full.ready())).is_err() {
                            return;
                        }
                    }
                }
            }
            if !batch.rows.is_empty() {
                let _ = tx.blocking_send(Ok(batch.ready()));
            }
        });
    }

    let progress = bar(out, unique);
    let started = Instant::now();
    let post = |batch: Ready| async move {
        crate::output::trace(format!(
            "batch: rows {}–{}, {} contacts",
            batch.first_row, batch.last_row, batch.rows
        ));
        let what = t!(
            "doing-importing-rows",
            first = batch.first_row.to_string(),
            last = batch.last_row.to_string(),
            file = book.path.display().to_string()
        );
        let outcome = match client
            // An upsert: repeating a batch whose answer was lost leaves the
            // same rows (its contacts then count as unchanged).
            .execute_idempotent(client.rpc("import_contacts", &batch.args), None, &what)
            .await
        {
            Ok(response) => response.json::<BatchCounts>(&what),
            Err(e) => Err(e),
        };
        (batch.first_row, batch.rows, outcome)
    };
    let mut in_flight = FuturesUnordered::new();
    let mut interrupted_at: Option<u32> = None;
    let mut failure: Option<Error> = None;
    let mut failed_at: Option<u32> = None;
    let mut input_done = false;
    loop {
        // Keep up to `in_flight_limit` batches going, unless stopping.
        while !input_done
            && interrupted_at.is_none()
            && failure.is_none()
            && in_flight.len() < in_flight_limit
        {
            match rx.recv().await {
                Some(Ok(batch)) => {
                    // Ctrl-C (or SIGTERM): the caller holds the clean
                    // stop; no batch is started after it.
                    if crate::interrupt::requested() {
                        interrupted_at = Some(batch.first_row);
                    } else {
                        in_flight.push(post(batch));
                    }
                }
                Some(Err(e)) => failure = Some(e),
                None => input_done = true,
            }
        }
        // Then wait for one to finish; what is in flight always finishes
        // (and is counted) before the import stops, whatever stopped it.
        let Some((first_row, rows, outcome)) = in_flight.next().await else {
            break;
        };
        match outcome {
            Ok(counts) => {
                report.add(&counts);
                progress.inc(rows);
            }
            Err(e) => {
                // The earliest failed batch says where a re-run must resume,
                // and its error is the one reported: with two batches in
                // flight, the later one may fail first.
                if failed_at.is_none_or(|at| first_row < at) {
                    failed_at = Some(first_row);
                    failure = Some(e);
                }
            }
        }
    }
    progress.finish_and_clear();
    if let Some(e) = failure {
        return Err(match failed_at {
            Some(row) => after_failed_batch(e, row, report.written() > 0),
            None => e,
        });
    }
    if let Some(next_row) = interrupted_at {
        return Ok(Sent::Interrupted { next_row });
    }
    report.elapsed = started.elapsed();
    Ok(Sent::All)
}

/// The advice after a batch failed: a re-run only where one can help (the
/// connection failed); a refused token keeps its own advice.
fn after_failed_batch(e: Error, first_row: u32, written: bool) -> Error {
    use crate::error::ErrorKind;
    match (e.kind(), written) {
        (ErrorKind::Config, _) => e,
        (ErrorKind::Unreachable | ErrorKind::Failure, true) => e.with_hint(t!(
            "import-hint-rerun-to-finish",
            row = first_row.to_string()
        )),
        (ErrorKind::Unreachable | ErrorKind::Failure, false) => {
            e.with_hint(t!("import-hint-rerun-when-up"))
        }
        (_, written) => {
            let more = if written {
                t!("import-hint-fix-then-rerun", row = first_row.to_string())
            } else {
                t!("import-hint-nothing-imported")
            };
            let hint = match e.hint() {
                Some(first) => t!("hint-join", first = first, then = more),
                None => more,
            };
            e.with_hint(hint)
        }
    }
}

fn bar(out: &Output, total: u64) -> ProgressBar {
    // The messages place indicatif's keys, given as their arguments.
    out.progress_bar(
        total,
        &format!(
            "{} [{{bar:30}}] {} · {{rate}} · {}",
            crate::t!("import-progress"),
            crate::t!(
                "import-progress-contacts",
                count = "{count}",
                total = "{total}"
            ),
            crate::t!("progress-eta", eta = "{eta}"),
        ),
    )
}
