//! mailsync: a Supabase-native command-line tool and SQL schema toolkit for
//! email-campaign data. The binary parses arguments and calls [`run`], which
//! dispatches each command to its module in [`commands`] in one `match`.
//! Layers, top to bottom (see docs/ARCHITECTURE.md): `cli` (clap) →
//! `commands` → `domain`, `supabase`, `postgres`, `config`, `output`, `error`.

pub mod bounces;
pub mod cli;
pub mod commands;
pub mod config;
pub mod domain;
pub mod error;
pub mod i18n;
pub mod local_stack;
pub mod output;
pub mod postgres;
pub mod smtp;
pub mod spreadsheet;
pub mod supabase;

use cli::{
    BouncesCommand, CampaignsCommand, Cli, Command, ContactsCommand, DbCommand, TemplatesCommand,
};
use commands::{account, campaigns, completions, contacts, dashboard, db, import, templates};
use config::Config;
use error::Result;

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    i18n::set_from_environment(cli.global.lang.map(Into::into))?;
    let out = cli.global.output();
    output::set_verbose(out.verbose > 0 && !out.quiet);
    let overrides = cli.global.overrides();
    // Loaded by the commands that need it: `completions` works even when
    // the configuration does not parse.
    let config = || {
        let config = Config::load(&overrides)?;
        output::trace(format!(
            "target: {} ({})",
            config.project_display(),
            // The -v trace is English, like the rest of it.
            config.supabase_url.source.describe(i18n::Lang::En)
        ));
        Ok::<_, error::Error>(config)
    };
    match cli.command {
        Command::Db(DbCommand::Reset(a)) => db::reset::run(&a.into(), &config()?, &out).await,
        Command::Db(DbCommand::Apply(a)) => db::apply::run(&a.into(), &config()?, &out).await,
        Command::Db(DbCommand::Verify) => db::verify::run(&config()?, &out).await,
        Command::Db(DbCommand::Migration(a)) => db::migration::run(&a.into(), &out).await,
        Command::Import(a) => import::run(&a.into(), &config()?, &out).await,
        Command::Contacts(ContactsCommand::List(a)) => {
            contacts::list::run(&a.into(), &config()?, &out).await
        }
        Command::Contacts(ContactsCommand::Export(a)) => {
            contacts::export::run(&a.into(), &config()?, &out).await
        }
        Command::Contacts(ContactsCommand::Unsubscribe(a)) => {
            contacts::unsubscribe::run(&a.into(), &config()?, &out).await
        }
        Command::Campaigns(CampaignsCommand::Create(a)) => {
            campaigns::create::run(&a.into(), &config()?, &out).await
        }
        Command::Campaigns(CampaignsCommand::List(a)) => {
            campaigns::list::run(&a.into(), &config()?, &out).await
        }
        Command::Campaigns(CampaignsCommand::Send(a)) => {
            campaigns::send::run(&a.into(), &config()?, &out).await
        }
        Command::Campaigns(CampaignsCommand::Deliver(a)) => {
            campaigns::deliver::run(&a.into(), &config()?, &out).await
        }
        Command::Campaigns(CampaignsCommand::Watch(a)) => {
            campaigns::watch::run(&a.into(), &config()?, &out).await
        }
        Command::Campaigns(CampaignsCommand::Report(a)) => {
            campaigns::report::run(&a.into(), &config()?, &out).await
        }
        Command::Templates(TemplatesCommand::Create(a)) => {
            templates::create::run(&a.into(), &config()?, &out).await
        }
        Command::Templates(TemplatesCommand::List) => templates::list::run(&config()?, &out).await,
        Command::Bounces(BouncesCommand::Scan(a)) => commands::bounces::scan::run(&a.into(), &out),
        Command::Dashboard => dashboard::run(&config()?, &out).await,
        Command::Login(a) => account::login::run(&a.into(), &config()?, &out).await,
        Command::Logout => account::logout::run(&config()?, &out).await,
        Command::Whoami => account::whoami::run(&config()?, &out).await,
        Command::Config => commands::config::run(&config()?, &out).await,
        Command::Completions(a) => completions::run(&a.into(), &out),
        Command::Man(a) => commands::man::run(&a.into(), &out),
    }
}
