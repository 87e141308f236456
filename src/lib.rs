//! mailsync: a Supabase-native command-line tool and SQL schema toolkit for
//! email-campaign data. The binary parses arguments and calls [`run`]; every
//! command lives in its own module and can be called from tests directly.

pub mod auth;
pub mod cli;
pub mod config;
pub mod contacts;
pub mod db;
pub mod error;
pub mod import;
pub mod output;
pub mod rest;

use cli::{Cli, Command};
use config::Config;
use error::Result;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let out = cli.global.output();
    let config = Config::load(&cli.global.overrides())?;
    match &cli.command {
        Command::Db(cmd) => db::run(cmd, &config, &out).await,
        Command::Import(args) => {
            let options = import::ImportOptions {
                file: args.file.clone(),
                sheet: args.sheet.clone(),
                org_column: args.org_column.clone(),
                email_column: args.email_column.clone(),
                dry_run: args.dry_run,
                strict: args.strict,
                rejects: args.rejects.clone(),
                batch_size: args.batch_size,
            };
            import::run(&options, &config, &out).await
        }
        Command::Contacts(cli::ContactsCommand::List {
            organization,
            limit,
        }) => contacts::list(organization.as_deref(), *limit, &config, &out).await,
    }
}
