//! mailsync: a Supabase-native command-line tool and SQL schema toolkit for
//! email-campaign data. The binary parses arguments and calls [`run`], which
//! dispatches each command to its module in [`commands`] in one `match`.
//! Layers, top to bottom (see docs/ARCHITECTURE.md): `cli` (clap) →
//! `commands` → `domain`, `supabase`, `postgres`, `smtp`, `output` →
//! `settings`, `local_stack`, `i18n`, `error`.

pub mod bounces;
pub mod cli;
pub mod commands;
pub mod domain;
pub mod error;
pub mod i18n;
pub mod interrupt;
pub mod local_stack;
pub mod mailbox;
pub mod output;
pub mod postgres;
pub mod settings;
pub mod smtp;
pub mod spreadsheet;
pub mod supabase;

use cli::{
    BouncesCommand, CampaignsCommand, Cli, Command, ContactsCommand, DbCommand, TemplatesCommand,
};
use commands::{account, campaigns, completions, contacts, dashboard, db, import, templates};
use error::Result;
use settings::{Config, Overrides};

/// Runs one parsed command line.
pub async fn run(cli: Cli) -> Result<()> {
    settings::set_language(
        cli.global.lang.map(Into::into),
        cli.global.env_file.as_deref(),
    )?;
    let out = cli.global.output();
    output::set_verbose(out.verbose > 0 && !out.quiet);
    let g = &cli.global;
    // Loaded by the commands that connect, with their connection flags:
    // `completions` works even when the configuration does not parse.
    let config = |overrides: Overrides| {
        let config = Config::load(&overrides)?;
        for note in &config.local_stack_notes {
            out.debug(note);
        }
        output::trace(format!(
            "target: {} ({})",
            config.project_display(),
            // The -v trace is English, like the rest of it.
            config.supabase_url.source.describe(i18n::Lang::En)
        ));
        Ok::<_, error::Error>(config)
    };
    match cli.command {
        Command::Db(DbCommand::Reset(a)) => {
            let config = config(a.connect.overrides(g))?;
            db::reset::run(&a.into(), &config, &out).await
        }
        Command::Db(DbCommand::Apply(a)) => {
            let config = config(a.connect.overrides(g))?;
            db::apply::run(&a.into(), &config, &out).await
        }
        Command::Db(DbCommand::Verify(c)) => db::verify::run(&config(c.overrides(g))?, &out).await,
        Command::Db(DbCommand::Migration(a)) => db::migration::run(&a.into(), &out).await,
        Command::Import(a) => {
            let config = config(a.connect.overrides(g))?;
            import::run(&a.options(&config.import)?, &config, &out).await
        }
        Command::Contacts(ContactsCommand::List(a)) => {
            let config = config(a.connect.overrides(g))?;
            contacts::list::run(&a.into(), &config, &out).await
        }
        Command::Contacts(ContactsCommand::Export(a)) => {
            let config = config(a.connect.overrides(g))?;
            contacts::export::run(&a.into(), &config, &out).await
        }
        Command::Contacts(ContactsCommand::Unsubscribe(a)) => {
            let config = config(a.connect.overrides(g))?;
            contacts::unsubscribe::run(&a.into(), &config, &out).await
        }
        Command::Campaigns(CampaignsCommand::Create(a)) => {
            let config = config(a.connect.overrides(g))?;
            campaigns::create::run(&a.into(), &config, &out).await
        }
        Command::Campaigns(CampaignsCommand::List(a)) => {
            let config = config(a.connect.overrides(g))?;
            campaigns::list::run(&a.into(), &config, &out).await
        }
        Command::Campaigns(CampaignsCommand::Send(a)) => {
            let config = config(a.connect.overrides(g))?;
            campaigns::send::run(&a.into(), &config, &out).await
        }
        Command::Campaigns(CampaignsCommand::Deliver(a)) => {
            let config = config(a.connect.overrides(g))?;
            campaigns::deliver::run(&a.into(), &config, &out).await
        }
        Command::Campaigns(CampaignsCommand::Watch(a)) => {
            let config = config(a.connect.overrides(g))?;
            campaigns::watch::run(&a.into(), &config, &out).await
        }
        Command::Campaigns(CampaignsCommand::Report(a)) => {
            let config = config(a.connect.overrides(g))?;
            campaigns::report::run(&a.into(), &config, &out).await
        }
        Command::Templates(TemplatesCommand::Create(a)) => {
            let config = config(a.connect.overrides(g))?;
            templates::create::run(&a.into(), &config, &out).await
        }
        Command::Templates(TemplatesCommand::List(c)) => {
            templates::list::run(&config(c.overrides(g))?, &out).await
        }
        Command::Bounces(BouncesCommand::Fetch(a)) => {
            let config = config(a.connect.overrides(g))?;
            commands::bounces::fetch::run(&a.into(), &config, &out).await
        }
        Command::Bounces(BouncesCommand::Scan(a)) => commands::bounces::scan::run(&a.into(), &out),
        Command::Dashboard(c) => dashboard::run(&config(c.overrides(g))?, &out).await,
        Command::Login(a) => {
            let config = config(a.connect.overrides(g))?;
            account::login::run(&a.into(), &config, &out).await
        }
        Command::Logout(a) => account::logout::run(&config(a.connect.overrides(g))?, &out).await,
        Command::Whoami(a) => account::whoami::run(&config(a.connect.overrides(g))?, &out).await,
        Command::Config(c) => commands::config::run(&config(c.overrides(g))?, &out).await,
        Command::Completions(a) => completions::run(&a.into(), &out),
        Command::Man(a) => commands::man::run(&a.into(), &out),
    }
}
