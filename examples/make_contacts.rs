//! Writes contact workbooks: the demo's `examples/contacts.xlsx`, and the
//! large clean sheets of `scripts/bench-import`.
//!
//!   cargo run --example make_contacts -- sample examples/contacts.xlsx
//!   cargo run --release --example make_contacts -- clean 100000 /tmp/100k.xlsx [/tmp/100k.csv]
//!
//! `sample` is about 50 rows with a header, messy spacing and case, a few
//! invalid emails and a few duplicates. `clean` has a header and N valid,
//! distinct rows over N/20 organisations; with a CSV path it also writes the
//! same rows, normalised, as `organization,email` for `psql \copy`.

use std::io::Write;

use rust_xlsxwriter::{Workbook, XlsxError};

const FIRST: [&str; 10] = [
    "jean", "marie", "luc", "sophie", "paul", "claire", "hugo", "lea", "omar", "ines",
];
const LAST: [&str; 5] = ["martin", "bernard", "dubois", "moreau", "laurent"];
const ORGS: [&str; 6] = [
    "Acme SARL",
    "Boulangerie  Dupont",
    "Coopérative du Lac",
    "Data & Co",
    "Éditions Lumière",
    "1234",
];

fn sample(path: &str) -> Result<(), XlsxError> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet().set_name("Contacts")?;
    sheet.write_string(0, 0, "Organisation")?;
    sheet.write_string(0, 1, "Adresse email")?;
    let mut row = 1u32;
    for (i, first) in FIRST.iter().enumerate() {
        for (j, last) in LAST.iter().take(4).enumerate() {
            let org = ORGS[(i + j) % ORGS.len()];
            let email = if (i + j) % 7 == 0 {
                format!("  {}.{}@Example.FR ", first.to_uppercase(), last)
            } else {
                format!("{first}.{last}@example.fr")
            };
            if org == "1234" {
                sheet.write_number(row, 0, 1234.0)?;
            } else {
                sheet.write_string(row, 0, org)?;
            }
            sheet.write_string(row, 1, &email)?;
            row += 1;
        }
    }
    // The mess real sheets have: a blank row, invalid emails, duplicates
    // (the last one wins), a contact without organisation.
    row += 1;
    for (org, email) in [
        ("Acme SARL", "not-an-email"),
        ("Data & Co", "paul@"),
        ("=HYPERLINK(\"http://x\")", "@example.fr"),
        ("Acme sarl", "jean.martin@example.fr"),
        ("Data & Co", "marie.dubois@example.fr"),
        ("", "sans.organisation@example.fr"),
        ("Nouvelle Org", ""),
    ] {
        sheet.write_string(row, 0, org)?;
        sheet.write_string(row, 1, email)?;
        row += 1;
    }
    book.save(path)
}

pub fn clean(rows: u32, path: &str, csv: Option<&str>) -> Result<(), Box<dyn std::error::Error>> {
    let mut book = Workbook::new();
    let sheet = book.add_worksheet_with_constant_memory();
    sheet.write_string(0, 0, "Organisation")?;
    sheet.write_string(0, 1, "Email")?;
    let mut out = match csv {
        Some(p) => Some(std::io::BufWriter::new(std::fs::File::create(p)?)),
        None => None,
    };
    let orgs = (rows / 20).max(1);
    for i in 0..rows {
        let org = format!("Organisation {:06}", i % orgs);
        let email = format!("contact{i:08}@bench.example.com");
        sheet.write_string(i + 1, 0, &org)?;
        sheet.write_string(i + 1, 1, &email)?;
        if let Some(out) = out.as_mut() {
            writeln!(out, "{org},{email}")?;
        }
    }
    book.save(path)?;
    if let Some(mut out) = out {
        out.flush()?;
    }
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args
        .iter()
        .map(String::as_str)
        .collect::<Vec<_>>()
        .as_slice()
    {
        ["sample", path] => sample(path)?,
        ["clean", n, path] => clean(n.parse()?, path, None)?,
        ["clean", n, path, csv] => clean(n.parse()?, path, Some(csv))?,
        _ => {
            eprintln!("usage: make_contacts sample PATH | clean ROWS XLSX [CSV]");
            std::process::exit(2);
        }
    }
    Ok(())
}
