//! The second pass of `mailsync import`: the winning rows, read again from
//! the sheet, sent in batches to `rpc/import_contacts`, with a progress bar
//! and a clean stop on Ctrl-C.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};

use super::reader::Workbook;
use super::report::Report;
use super::validate::{classify, Classified};
use super::Scan;
use crate::error::{Error, Result};
use crate::output::Output;
use crate::supabase::rest::RestClient;

pub enum Sent {
    All,
    Interrupted { next_row: u32 },
}

#[derive(Debug, Serialize)]
struct BatchRow {
    email: String,
    organization: Option<String>,
}

/// What `rpc/import_contacts` answers for one batch.
#[derive(Debug, Default, Deserialize)]
pub struct BatchCounts {
    pub contacts_created: u64,
    pub contacts_updated: u64,
    pub contacts_unchanged: u64,
    pub organizations_created: u64,
}

struct Batch {
    rows: Vec<BatchRow>,
    first_row: u32,
    last_row: u32,
}

/// The second pass: the winning rows, in batches, to the REST API.
pub async fn send(
    client: &RestClient,
    book: &Workbook,
    scan: Scan,
    batch_size: usize,
    out: &Output,
    report: &mut Report,
) -> Result<Sent> {
    let unique = scan.unique();
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Batch>>(2);
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
                        if tx.blocking_send(Ok(full)).is_err() {
                            return;
                        }
                    }
                }
            }
            if !batch.rows.is_empty() {
                let _ = tx.blocking_send(Ok(batch));
            }
        });
    }

    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                stop.store(true, Ordering::SeqCst);
            }
        });
    }
    let progress = bar(out, unique);
    let started = Instant::now();
    while let Some(batch) = rx.recv().await {
        let batch = batch?;
        if stop.load(Ordering::SeqCst) {
            progress.finish_and_clear();
            return Ok(Sent::Interrupted {
                next_row: batch.first_row,
            });
        }
        let n = batch.rows.len() as u64;
        crate::output::trace(format!(
            "batch: rows {}–{}, {n} contacts",
            batch.first_row, batch.last_row
        ));
        let args = serde_json::json!({ "rows": batch.rows });
        let what = format!(
            "importing rows {}–{} of {}",
            batch.first_row,
            batch.last_row,
            book.path.display()
        );
        let counts: BatchCounts = match client
            .execute(client.rpc("import_contacts", &args), None, &what)
            .await
        {
            Ok(response) => response.json(&what)?,
            Err(e) => {
                progress.finish_and_clear();
                return Err(after_failed_batch(e, batch.first_row, report.written() > 0));
            }
        };
        report.add(&counts);
        progress.inc(n);
    }
    progress.finish_and_clear();
    report.elapsed = started.elapsed();
    Ok(Sent::All)
}

/// The advice after a batch failed: a re-run only where one can help (the
/// connection failed); a refused token keeps its own advice.
fn after_failed_batch(e: Error, first_row: u32, written: bool) -> Error {
    use crate::error::ErrorKind;
    match (e.kind(), written) {
        (ErrorKind::Config, _) => e,
        (ErrorKind::Unreachable | ErrorKind::Failure, true) => e.with_hint(format!(
            "rows before {first_row} are imported; run the same command again to finish (nothing is duplicated)"
        )),
        (ErrorKind::Unreachable | ErrorKind::Failure, false) => {
            e.with_hint("nothing was imported; run the same command again when the server answers")
        }
        (_, true) => {
            let hint = e.hint().map(|h| format!("{h}; ")).unwrap_or_default();
            e.with_hint(format!(
                "{hint}rows before {first_row} are imported; once this is fixed, importing the file again adds the rest (nothing is duplicated)"
            ))
        }
        (_, false) => {
            let hint = e.hint().map(|h| format!("{h}; ")).unwrap_or_default();
            e.with_hint(format!("{hint}nothing was imported"))
        }
    }
}

fn bar(out: &Output, total: u64) -> ProgressBar {
    if !out.interactive() || out.json {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "Importing [{bar:30}] {human_pos}/{human_len} contacts · {per_sec} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
