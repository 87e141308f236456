//! The import rules of the contract, row by row: which columns, which row is
//! a header, what a valid email is, how cells are trimmed, and why a row is
//! rejected. Organisation names are left to the server's one rule
//! (`mailsync_org_name` in `sql/MASTER-DATABASE.sql`).

use email_address::{EmailAddress, Options};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::spreadsheet::format::column_letter;
use crate::spreadsheet::reader::SheetRow;
use crate::spreadsheet::restore;

/// A column given as a letter (`B`) or a header name (`Courriel`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ColumnSpec {
    Index(usize),
    Header(String),
}

impl ColumnSpec {
    /// `A`..`ZZZ` is a column letter; anything else is a header name.
    pub fn parse(text: &str) -> Result<Self> {
        let text = text.trim();
        if text.is_empty() {
            return Err(Error::usage(crate::t!("import-error-column-spec")));
        }
        if text.len() <= 3 && text.chars().all(|c| c.is_ascii_alphabetic()) {
            let index = text
                .to_ascii_uppercase()
                .bytes()
                .fold(0usize, |acc, b| acc * 26 + usize::from(b - b'A' + 1))
                - 1;
            return Ok(ColumnSpec::Index(index));
        }
        Ok(ColumnSpec::Header(text.to_string()))
    }
}

/// The two columns an import reads, resolved against the sheet's first row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Columns {
    pub organization: usize,
    pub email: usize,
}

/// Resolves the column specs; header names are looked up (case-insensitive,
/// trimmed) in `first` — the sheet's first non-blank row.
pub fn resolve_columns(
    org: &ColumnSpec,
    email: &ColumnSpec,
    first: Option<&SheetRow>,
    file: &str,
) -> Result<Columns> {
    let find = |spec: &ColumnSpec, what: &str| -> Result<usize> {
        match spec {
            ColumnSpec::Index(i) => Ok(*i),
            ColumnSpec::Header(name) => {
                let headers = first.map(|r| r.cells.as_slice()).unwrap_or(&[]);
                headers
                    .iter()
                    .position(|h| h.trim().eq_ignore_ascii_case(name.trim()))
                    .ok_or_else(|| {
                        let listed = headers
                            .iter()
                            .enumerate()
                            .filter(|(_, h)| !h.trim().is_empty())
                            .map(|(i, h)| format!("{} {:?}", column_letter(i), h.trim()))
                            .collect::<Vec<_>>()
                            .join(", ");
                        Error::usage(crate::t!(
                            "import-error-no-column-headed",
                            file = file,
                            what = what,
                            name = format!("{name:?}"),
                            headers = if listed.is_empty() {
                                "none".to_string()
                            } else {
                                listed
                            }
                        ))
                    })
            }
        }
    };
    Ok(Columns {
        organization: find(org, "organisation")?,
        email: find(email, "email")?,
    })
}

/// Why a row was not imported.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Reject {
    pub row: u32,
    pub organization: String,
    pub email: String,
    pub reason: String,
}

/// What one data row is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Classified {
    Blank,
    Rejected(Reject),
    Contact {
        email: String,
        /// The organisation cell as read (trimmed), `None` when empty. The
        /// organisation-name rule (inner white space, blank names) is the
        /// server's: `import_contacts` applies `mailsync_org_name`, as
        /// `campaigns send` and `contacts list` do, so an import and a send
        /// can never disagree about a name.
        organization: Option<String>,
    },
}

/// The longest address the schema stores (RFC 5321; `contacts_email_length`).
pub const MAX_EMAIL_CHARS: usize = 254;
/// The longest organisation name the schema stores (`contacts_organization_name_length`).
pub const MAX_ORGANIZATION_CHARS: usize = 200;

/// The email as stored (trimmed, lower-cased), or why it is not one.
pub fn normalize_email(text: &str) -> std::result::Result<String, String> {
    let email = text.trim().to_lowercase();
    if email.is_empty() {
        return Err("missing email".into());
    }
    // Plain addresses only: a domain with at least one dot, no `[1.2.3.4]`
    // literal, no `Name <a@b>` display text.
    let options = Options::default()
        .with_required_tld()
        .without_domain_literal()
        .without_display_text();
    match EmailAddress::parse_with_options(&email, options) {
        // The schema's bound (RFC 5321), `contacts_email_length`.
        Ok(_) if email.chars().count() > MAX_EMAIL_CHARS => Err(format!(
            "invalid email: longer than {MAX_EMAIL_CHARS} characters"
        )),
        Ok(_) if email.contains(char::is_whitespace) => {
            Err("invalid email: contains white space".into())
        }
        Ok(_) if email.starts_with('"') => Err("invalid email: quoted local part".into()),
        Ok(_) => Ok(email),
        Err(e) => Err(format!("invalid email: {e}")),
    }
}

pub fn is_email(text: &str) -> bool {
    normalize_email(text).is_ok()
}

/// Classifies one data row under the contract's rules.
pub fn classify(row: &SheetRow, columns: Columns) -> Classified {
    // A cell mailsync neutralised on export (`'=x`) reads as it was (`=x`).
    let org_cell = restore(row.cell(columns.organization).trim());
    let email_cell = restore(row.cell(columns.email).trim());
    if org_cell.is_empty() && email_cell.is_empty() {
        return Classified::Blank;
    }
    // The schema's bound; the server's rule may shorten a name further
    // (runs of white space), never lengthen it.
    let too_long = org_cell.chars().count() > MAX_ORGANIZATION_CHARS;
    match normalize_email(&email_cell) {
        Ok(_) if too_long => Classified::Rejected(Reject {
            row: row.row,
            organization: org_cell.to_string(),
            email: email_cell.to_string(),
            reason: format!("organisation name longer than {MAX_ORGANIZATION_CHARS} characters"),
        }),
        Ok(email) => Classified::Contact {
            email,
            organization: (!org_cell.is_empty()).then(|| org_cell.to_string()),
        },
        Err(reason) => Classified::Rejected(Reject {
            row: row.row,
            organization: org_cell.to_string(),
            email: email_cell.to_string(),
            reason,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(cells: &[&str]) -> SheetRow {
        SheetRow {
            row: 7,
            cells: cells.iter().map(|c| c.to_string()).collect(),
        }
    }

    const AB: Columns = Columns {
        organization: 0,
        email: 1,
    };

    #[test]
    fn column_letters_and_names() {
        assert_eq!(ColumnSpec::parse("b").unwrap(), ColumnSpec::Index(1));
        assert_eq!(ColumnSpec::parse("AA").unwrap(), ColumnSpec::Index(26));
        assert_eq!(
            ColumnSpec::parse("Courriel").unwrap(),
            ColumnSpec::Header("Courriel".into())
        );
        assert_eq!(column_letter(0), "A");
        assert_eq!(column_letter(27), "AB");
        assert_eq!(column_letter(701), "ZZ");
        for i in [0, 25, 26, 51, 701, 702, 1000] {
            assert_eq!(
                ColumnSpec::parse(&column_letter(i)).unwrap(),
                ColumnSpec::Index(i)
            );
        }
    }

    #[test]
    fn emails_are_trimmed_lower_cased_and_checked() {
        assert_eq!(
            normalize_email("  Jean.Dupont@Example.FR "),
            Ok("jean.dupont@example.fr".into())
        );
        for bad in [
            "",
            "jean",
            "jean@",
            "@x.fr",
            "jean@localhost",
            "a b@x.fr",
            "jean@[1.2.3.4]",
            "Jean <j@x.fr>",
            "j@@x.fr",
        ] {
            assert!(normalize_email(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn addresses_and_organisations_over_the_schema_bounds_are_rejected() {
        // 64 + 1 + 191: each part within RFC 5321, the whole over 254.
        let label = "d".repeat(62);
        let domain = format!("{label}.{label}.{label}.fr");
        let long = format!("{}@{domain}", "a".repeat(64));
        assert!(long.len() > MAX_EMAIL_CHARS, "{}", long.len());
        assert_eq!(
            normalize_email(&long),
            Err("invalid email: longer than 254 characters".into())
        );
        let fits = format!("{}@{domain}", "a".repeat(60));
        assert!(fits.len() <= MAX_EMAIL_CHARS);
        assert_eq!(normalize_email(&fits), Ok(fits.clone()));

        let org = "é".repeat(MAX_ORGANIZATION_CHARS);
        assert!(matches!(
            classify(&row(&[&org, "a@x.fr"]), AB),
            Classified::Contact { .. }
        ));
        match classify(&row(&[&format!("{org}e"), "a@x.fr"]), AB) {
            Classified::Rejected(r) => {
                assert_eq!(r.reason, "organisation name longer than 200 characters")
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rows_are_blank_rejected_or_contacts() {
        assert_eq!(classify(&row(&["", "  "]), AB), Classified::Blank);
        assert_eq!(classify(&row(&[]), AB), Classified::Blank);
        // Inner white space is the server's to collapse (tests/it/import.rs).
        assert_eq!(
            classify(&row(&["  Acme   Inc ", "A@X.FR"]), AB),
            Classified::Contact {
                email: "a@x.fr".into(),
                organization: Some("Acme   Inc".into())
            }
        );
        assert_eq!(
            classify(&row(&["", "a@x.fr"]), AB),
            Classified::Contact {
                email: "a@x.fr".into(),
                organization: None
            }
        );
        match classify(&row(&["Acme", ""]), AB) {
            Classified::Rejected(r) => {
                assert_eq!((r.row, r.reason.as_str()), (7, "missing email"))
            }
            other => panic!("{other:?}"),
        }
    }
}
