//! mailsync: a Supabase-native command-line tool and SQL schema toolkit for
//! email-campaign data. The binary parses arguments and calls [`run`]; every
//! command lives in its own module and can be called from tests directly.

pub mod account;
pub mod auth;
pub mod campaigns;
pub mod cli;
pub mod config;
pub mod contacts;
pub mod db;
#[path = "commands/campaigns/deliver.rs"]
pub mod deliver;
pub mod error;
pub mod gotrue;
pub mod import;
pub mod output;
pub mod rest;
pub mod session;
pub mod show_config;
pub mod smtp;
pub mod templates;
#[path = "commands/contacts/unsubscribe.rs"]
pub mod unsubscribe;
pub mod watch;

use cli::{Cli, Command};
use config::Config;
use error::Result;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    let out = cli.global.output();
    // Completions need no configuration (which may not even parse yet).
    if let Command::Completions { shell } = &cli.command {
        let mut command = <Cli as clap::CommandFactory>::command();
        clap_complete::generate(*shell, &mut command, "mailsync", &mut std::io::stdout());
        return Ok(());
    }
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
        Command::Contacts(cli::ContactsCommand::Unsubscribe { emails, undo }) => {
            unsubscribe::run(emails, *undo, &config, &out).await
        }
        Command::Campaigns(cmd) => campaigns_command(cmd, &config, &out).await,
        Command::Templates(cli::TemplatesCommand::Create {
            name,
            subject,
            content,
            content_file,
        }) => {
            let content = match (content, content_file) {
                (Some(text), _) => campaigns::Content::Text(text.clone()),
                (_, Some(path)) => campaigns::Content::File(path.clone()),
                _ => campaigns::Content::Text(String::new()),
            };
            templates::create(name, subject, &content, &config, &out).await
        }
        Command::Templates(cli::TemplatesCommand::List) => templates::list(&config, &out).await,
        Command::Dashboard => campaigns::dashboard(&config, &out).await,
        Command::Login {
            email,
            password_stdin,
        } => account::login(email.as_deref(), *password_stdin, &config, &out).await,
        Command::Logout => account::logout(&config, &out).await,
        Command::Whoami => account::whoami(&config, &out).await,
        Command::Config => show_config::show(&config, &out).await,
        Command::Completions { .. } => Ok(()),
    }
}

async fn campaigns_command(
    cmd: &cli::CampaignsCommand,
    config: &Config,
    out: &output::Output,
) -> Result<()> {
    use cli::CampaignsCommand as C;
    match cmd {
        C::Create {
            name,
            subject,
            content,
        } => campaigns::create(name, subject.as_deref(), &content.content(), config, out).await,
        C::List { status } => campaigns::list(status.as_deref(), config, out).await,
        C::Send {
            campaign,
            organization,
            yes,
        } => campaigns::send(campaign, organization.as_deref(), *yes, config, out).await,
        C::Deliver(args) => deliver::run(&args.options()?, config, out).await,
        C::Watch {
            mode,
            interval,
            once,
            until_done,
        } => {
            if !interval.is_finite() || *interval < 0.5 {
                return Err(error::Error::usage(
                    "--interval must be at least 0.5 seconds",
                ));
            }
            let options = watch::WatchOptions {
                mode: *mode,
                interval: std::time::Duration::from_secs_f64(*interval),
                once: *once,
                until_done: *until_done,
            };
            watch::run(&options, config, out).await
        }
    }
}
