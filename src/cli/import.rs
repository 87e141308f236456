//! `mailsync import`: its arguments and their mapping to
//! `commands::import::Options`. A flag wins over the setting of the same
//! name (environment or `.env`, read by the settings layer), which wins over
//! the import's own default.

use std::path::PathBuf;

use clap::Args;

use super::ConnectArgs;
use crate::commands;
use crate::commands::import::limits::{self, Limits};
use crate::error::{Error, Result};
use crate::settings::{
    ImportValues, Setting, ENV_IMPORT_IN_FLIGHT, ENV_IMPORT_MAX_CELLS, ENV_IMPORT_MAX_CELL_LENGTH,
    ENV_IMPORT_MAX_ENTRY_SIZE, ENV_IMPORT_MAX_SHARED_STRINGS,
};

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "Column A is the organisation and column B the email unless told otherwise; a
first row whose email cell is not an email is a header. Rows go through the REST
API with your access token, so Row Level Security applies. Re-importing the same
file changes nothing.

Examples:
  mailsync import contacts.xlsx
  mailsync import export.csv --email-column Courriel --org-column Entreprise
  mailsync import contacts.xlsx --sheet Clients --dry-run
  mailsync import contacts.xlsx --strict --rejects rejects.csv   # exit 4 and write nothing if a row is bad
  mailsync --json import contacts.xlsx | jq .contacts_created"
)]
pub struct ImportArgs {
    /// The spreadsheet to read
    pub file: PathBuf,
    /// Sheet to read (default: the first)
    #[arg(long, value_name = "NAME")]
    pub sheet: Option<String>,
    /// CSV text encoding: utf-8, utf-16le, utf-16be, windows-1252 (latin-1). Default: detected
    #[arg(long, value_name = "NAME")]
    pub encoding: Option<String>,
    /// Organisation column: a letter or a header name
    #[arg(long, value_name = "COL", default_value = "A")]
    pub org_column: String,
    /// Email column: a letter or a header name
    #[arg(long, value_name = "COL", default_value = "B")]
    pub email_column: String,
    /// Read and validate, report, write nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Exit 4 and write nothing when any row is rejected
    #[arg(long)]
    pub strict: bool,
    /// Write the rejected rows to this CSV file
    #[arg(long, value_name = "PATH")]
    pub rejects: Option<PathBuf>,
    /// Contacts per request
    #[arg(long, value_name = "N", default_value_t = commands::import::DEFAULT_BATCH_SIZE)]
    pub batch_size: usize,
    /// Requests sent at once (1 to 8; 1 sends one batch at a time)
    #[arg(long, value_name = "N", help = format!(
        "Requests sent at once (1 to 8; 1 sends one batch at a time) [env: {ENV_IMPORT_IN_FLIGHT}] [default: {}]",
        commands::import::DEFAULT_IN_FLIGHT
    ))]
    pub in_flight: Option<usize>,
    #[arg(long, value_name = "SIZE", value_parser = size_limit, help = format!(
        "Largest decompressed entry of an .xlsx/.xlsb/.ods archive [env: {ENV_IMPORT_MAX_ENTRY_SIZE}] [default: {}MiB]",
        limits::DEFAULT_MAX_ENTRY_SIZE >> 20
    ))]
    pub max_entry_size: Option<u64>,
    #[arg(long, value_name = "N", value_parser = count_limit, help = format!(
        "Most shared strings an .xlsx/.xlsb may declare or hold [env: {ENV_IMPORT_MAX_SHARED_STRINGS}] [default: {}]",
        limits::DEFAULT_MAX_SHARED_STRINGS
    ))]
    pub max_shared_strings: Option<u64>,
    #[arg(long, value_name = "N", value_parser = count_limit, help = format!(
        "Most cells in a sheet [env: {ENV_IMPORT_MAX_CELLS}] [default: {}; {} for .ods and .xls]",
        limits::DEFAULT_MAX_CELLS, limits::DEFAULT_MAX_CELLS_IN_MEMORY
    ))]
    pub max_cells: Option<u64>,
    #[arg(long, value_name = "N", value_parser = count_limit, help = format!(
        "Most characters in a cell [env: {ENV_IMPORT_MAX_CELL_LENGTH}] [default: {}]",
        limits::DEFAULT_MAX_CELL_LENGTH
    ))]
    pub max_cell_length: Option<u64>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

fn size_limit(text: &str) -> std::result::Result<u64, String> {
    limits::parse_limit(text, true)
}

fn count_limit(text: &str) -> std::result::Result<u64, String> {
    limits::parse_limit(text, false)
}

/// A flag's value, else its setting's read with the flag's parser (a value
/// that does not parse is a usage error naming both), else `None`.
fn flag_or_setting<T>(
    flag: Option<T>,
    setting: &Option<Setting<String>>,
    name: &str,
    flag_name: &str,
    parse: impl Fn(&str) -> std::result::Result<T, String>,
) -> Result<Option<T>> {
    match (flag, setting) {
        (Some(value), _) => Ok(Some(value)),
        (None, None) => Ok(None),
        (None, Some(Setting { value, source })) => parse(value).map(Some).map_err(|reason| {
            Error::usage(crate::t!(
                "settings-error-limit",
                setting = format!("{name} ({source})"),
                flag = flag_name,
                reason = reason
            ))
        }),
    }
}

impl ImportArgs {
    /// The import's options: each flag, else its setting (`settings`: the
    /// environment or `.env`), else the import's default.
    pub fn options(self, settings: &ImportValues) -> Result<commands::import::Options> {
        let count = |text: &str| count_limit(text);
        let in_flight = flag_or_setting(
            self.in_flight,
            &settings.in_flight,
            ENV_IMPORT_IN_FLIGHT,
            "--in-flight",
            |text| {
                text.trim()
                    .parse::<usize>()
                    .map_err(|_| format!("{text:?} is not a whole number"))
            },
        )?;
        let limits = Limits::with(
            flag_or_setting(
                self.max_entry_size,
                &settings.max_entry_size,
                ENV_IMPORT_MAX_ENTRY_SIZE,
                "--max-entry-size",
                size_limit,
            )?,
            flag_or_setting(
                self.max_shared_strings,
                &settings.max_shared_strings,
                ENV_IMPORT_MAX_SHARED_STRINGS,
                "--max-shared-strings",
                count,
            )?,
            flag_or_setting(
                self.max_cells,
                &settings.max_cells,
                ENV_IMPORT_MAX_CELLS,
                "--max-cells",
                count,
            )?,
            flag_or_setting(
                self.max_cell_length,
                &settings.max_cell_length,
                ENV_IMPORT_MAX_CELL_LENGTH,
                "--max-cell-length",
                count,
            )?,
        );
        Ok(commands::import::Options {
            file: self.file,
            sheet: self.sheet,
            encoding: self.encoding,
            org_column: self.org_column,
            email_column: self.email_column,
            dry_run: self.dry_run,
            strict: self.strict,
            rejects: self.rejects,
            batch_size: self.batch_size,
            in_flight: in_flight.unwrap_or(commands::import::DEFAULT_IN_FLIGHT),
            limits,
        })
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::cli::{Cli, Command};
    use crate::settings::Source;

    fn args(line: &[&str]) -> ImportArgs {
        let cli = Cli::try_parse_from(["mailsync", "import", "f.csv"].iter().chain(line)).unwrap();
        match cli.command {
            Command::Import(a) => a,
            other => panic!("{other:?}"),
        }
    }

    fn given(value: &str) -> Option<Setting<String>> {
        Some(Setting {
            value: value.into(),
            source: Source::Environment,
        })
    }

    #[test]
    fn a_flag_wins_over_its_setting_which_wins_over_the_default() {
        let settings = ImportValues {
            in_flight: given("3"),
            max_cells: given("150"),
            max_entry_size: given("4MiB"),
            ..Default::default()
        };
        let o = args(&[]).options(&settings).unwrap();
        assert_eq!(o.in_flight, 3);
        assert_eq!(o.limits, Limits::with(Some(4 << 20), None, Some(150), None));
        let o = args(&["--max-cells", "200", "--in-flight", "1"])
            .options(&settings)
            .unwrap();
        assert_eq!(o.in_flight, 1);
        assert_eq!(o.limits, Limits::with(Some(4 << 20), None, Some(200), None));
        let o = args(&[]).options(&ImportValues::default()).unwrap();
        assert_eq!(o.in_flight, commands::import::DEFAULT_IN_FLIGHT);
        assert_eq!(o.limits, Limits::with(None, None, None, None));
    }

    #[test]
    fn a_setting_that_does_not_parse_is_a_usage_error_naming_the_flag() {
        let settings = ImportValues {
            max_cells: given("lots"),
            ..Default::default()
        };
        let e = args(&[]).options(&settings).unwrap_err();
        assert_eq!(e.kind().exit_code(), 2);
        assert!(e.message().contains("--max-cells"), "{e}");
        assert!(e.message().contains(ENV_IMPORT_MAX_CELLS), "{e}");
        // The flag, when given, is what counts.
        assert!(args(&["--max-cells", "9"]).options(&settings).is_ok());
    }
}
