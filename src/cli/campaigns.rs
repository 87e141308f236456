//! `mailsync campaigns ...` and `mailsync templates ...`: their arguments,
//! help and mapping to `commands::campaigns` and `commands::templates`.

use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};

use super::ConnectArgs;
use crate::commands;
use crate::domain::{CampaignStatus, Content};

/// The content of a campaign or template: inline, from a file, or (for a
/// campaign) from a template.
#[derive(Debug, Clone, Args)]
#[group(required = true, multiple = false)]
pub struct ContentArgs {
    /// The content, inline
    #[arg(long, value_name = "TEXT")]
    pub content: Option<String>,
    /// Read the content from this file
    #[arg(long, value_name = "PATH")]
    pub content_file: Option<PathBuf>,
    /// Take the content (and the subject, unless given) from this template
    #[arg(long, value_name = "NAME")]
    pub template: Option<String>,
}

#[derive(Debug, Subcommand)]
pub enum CampaignsCommand {
    /// Create a campaign (status draft)
    #[command(after_help = "Examples:
  mailsync campaigns create --name \"Rentrée 2026\" --subject \"Nouveautés\" --content-file mail.html
  mailsync campaigns create --name Relance --template relance
  mailsync --json campaigns create --name Test --subject Hi --content Hello | jq -r .id")]
    Create(CampaignCreateArgs),
    /// Campaigns with their totals (from campaign_analytics)
    #[command(after_help = "Examples:
  mailsync campaigns list
  mailsync campaigns list --status sending
  mailsync --json campaigns list | jq '.[] | {campaign_name, progress}'")]
    List(CampaignListArgs),
    /// Queue a campaign: one pending email per contact, in one server-side call
    #[command(
        after_help = "Asks for confirmation on a terminal, showing how many recipients; --yes in scripts.
A campaign that is already sending or sent is refused and nothing is created.
mailsync records and tracks campaigns; your sending service delivers them and
updates each email's status.

Examples:
  mailsync campaigns send \"Rentrée 2026\"
  mailsync campaigns send 3f2a…-uuid --organization \"Acme SARL\" --yes"
    )]
    Send(CampaignSendArgs),
    /// Live progress: "Envoi en progression" and "Campagne terminée"
    #[command(
        after_help = "Redrawn in place on a terminal; a plain snapshot per refresh when piped; one
JSON object per refresh and line with --json.

Examples:
  mailsync campaigns watch                       # Realtime if the project has it, else polling
  mailsync campaigns watch --mode poll --interval 5
  mailsync campaigns watch --until-done          # CI: exit 0 once nothing is sending
  mailsync --json campaigns watch --once         # {\"dashboard\": …, \"sending\": […], \"sent\": […]}"
    )]
    Watch(CampaignWatchArgs),
    /// Send the queued emails through SMTP, each at most once, recording every outcome
    #[command(
        after_help = "Sends the pending emails through MAILSYNC_SMTP_URL as MAILSYNC_FROM; with no
configuration, to the local stack's SMTP server (read them in its web inbox:
scripts/mail-catcher.sh env prints its address). Each email is claimed in the
database before it is sent and its outcome recorded right after, so several
workers can share a campaign and none sends an email twice. An email whose outcome
is unknown (its worker was killed while the SMTP server had it) is reported, and
sent again only with --resend-unknown, or settled with --settle-unknown once you
know what became of it. Emails claimed but never handed to the SMTP server go back
to the queue by themselves.

Exit codes: 0 done, 1 failure, 2 usage, 3 SMTP server or configuration problem
(nothing claimed), 5 emails with an unknown outcome remain, 130 interrupted (the
emails in flight were finished and recorded).

Examples:
  mailsync campaigns deliver \"Rentrée 2026\"
  mailsync campaigns deliver --rate 50 --concurrency 8     # every sending campaign
  mailsync campaigns deliver --follow                       # keep going, pick up new sends
  mailsync campaigns deliver --verp                         # return path news+<email id>@…
  mailsync --json campaigns deliver 3f2a…-uuid | jq .sent
  MAILSYNC_SMTP_URL=smtps://apikey:$KEY@smtp.example.com MAILSYNC_FROM='Acme <news@acme.example>' \\
    mailsync campaigns deliver --dry-run"
    )]
    Deliver(CampaignDeliverArgs),
    /// Write a campaign's report workbook: its figures, and every recipient with their status
    #[command(
        after_help = "Sheet \"Campaign\": the campaign and its figures (campaign_analytics); sheet
\"Recipients\": every email of the campaign (email, organization, status, sent_at,
delivered_at, error_message).

Examples:
  mailsync campaigns report \"Rentrée 2026\" rentree.xlsx
  mailsync --json campaigns report 3f2a…-uuid report.xlsx | jq .recipients"
    )]
    Report(CampaignReportArgs),
}

#[derive(Debug, Clone, Args)]
pub struct CampaignReportArgs {
    /// The campaign: its id, or its name when unique
    pub campaign: String,
    /// The workbook to write (.xlsx)
    pub file: PathBuf,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignCreateArgs {
    /// The campaign's name
    #[arg(long)]
    pub name: String,
    /// The subject line (required unless the template has one)
    #[arg(long, value_name = "TEXT")]
    pub subject: Option<String>,
    #[command(flatten)]
    pub content: ContentArgs,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignListArgs {
    /// Only campaigns with this status
    #[arg(long, value_enum)]
    pub status: Option<StatusArg>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

/// `email_campaigns.status`, as the command line spells it.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum StatusArg {
    Draft,
    Scheduled,
    Sending,
    Sent,
    Failed,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignSendArgs {
    /// The campaign: its id, a unique id prefix (as `campaigns list` shows), or its unique name
    pub campaign: String,
    /// Only the contacts of this organisation
    #[arg(long, value_name = "NAME")]
    pub organization: Option<String>,
    /// Do not ask for confirmation (required without a terminal)
    #[arg(short, long)]
    pub yes: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignDeliverArgs {
    /// The campaign (id, or name when unique); default: all your sending campaigns
    pub campaign: Option<String>,
    /// Emails per second across all connections (0: no limit)
    #[arg(long, value_name = "N", default_value_t = commands::campaigns::deliver::DEFAULT_RATE)]
    pub rate: f64,
    /// SMTP connections used at once
    #[arg(long, value_name = "N", default_value_t = commands::campaigns::deliver::DEFAULT_CONCURRENCY)]
    pub concurrency: usize,
    /// Keep running and deliver campaigns queued later (Ctrl-C to stop)
    #[arg(long)]
    pub follow: bool,
    /// Check the settings and the SMTP server, count what is queued; claim and send nothing
    #[arg(long)]
    pub dry_run: bool,
    /// Also send the emails whose outcome is unknown (they may have gone out already)
    #[arg(long)]
    pub resend_unknown: bool,
    /// Settle the campaign's emails whose outcome is unknown as sent or failed
    /// (once the SMTP server's logs tell), then deliver the rest
    #[arg(long, value_name = "OUTCOME", value_parser = ["sent", "failed"], conflicts_with = "resend_unknown")]
    pub settle_unknown: Option<String>,
    /// Tries per email for temporary failures (4xx, lost connection)
    #[arg(long, value_name = "N", default_value_t = commands::campaigns::deliver::DEFAULT_ATTEMPTS)]
    pub attempts: u32,
    /// Seconds before the first retry (doubles each time)
    #[arg(long, value_name = "SECS", default_value_t = commands::campaigns::deliver::DEFAULT_RETRY_DELAY_SECS)]
    pub retry_delay: f64,
    /// Seconds a claim is held before it counts as abandoned (renewed while working)
    #[arg(long, value_name = "SECS", default_value_t = commands::campaigns::deliver::DEFAULT_LEASE.as_secs())]
    pub lease: u64,
    /// Send each email from its own return path, local+<email id>@domain (VERP), so
    /// every report names its email by the address it comes back to
    #[arg(long)]
    pub verp: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
pub struct CampaignWatchArgs {
    /// auto: Realtime when available, else polling
    #[arg(long, value_enum, default_value = "auto")]
    pub mode: WatchMode,
    /// Seconds between reads when polling (at least 0.5)
    #[arg(long, value_name = "SECS", default_value_t = 2.0)]
    pub interval: f64,
    /// Print one snapshot and exit
    #[arg(long)]
    pub once: bool,
    /// Exit 0 once no campaign is sending
    #[arg(long)]
    pub until_done: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum WatchMode {
    /// Realtime when the project offers it, otherwise polling
    Auto,
    /// Read the views every --interval seconds
    Poll,
    /// Listen to Supabase Realtime and re-read on each change
    Realtime,
}

#[derive(Debug, Subcommand)]
pub enum TemplatesCommand {
    /// Create a template
    #[command(after_help = "Examples:
  mailsync templates create --name relance --subject \"Petit rappel\" --content-file relance.html")]
    Create(TemplateCreateArgs),
    /// List templates
    #[command(after_help = "Examples:
  mailsync templates list
  mailsync --json templates list")]
    List(ConnectArgs),
}

#[derive(Debug, Clone, Args)]
pub struct TemplateCreateArgs {
    /// The template's name (unique)
    #[arg(long)]
    pub name: String,
    /// The subject line
    #[arg(long, value_name = "TEXT")]
    pub subject: String,
    /// The content, inline
    #[arg(
        long,
        value_name = "TEXT",
        required_unless_present = "content_file",
        conflicts_with = "content_file"
    )]
    pub content: Option<String>,
    /// Read the content from this file
    #[arg(long, value_name = "PATH")]
    pub content_file: Option<PathBuf>,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

impl From<CampaignReportArgs> for commands::campaigns::report::Options {
    fn from(a: CampaignReportArgs) -> Self {
        Self {
            campaign: a.campaign,
            file: a.file,
        }
    }
}

impl From<CampaignCreateArgs> for commands::campaigns::create::Options {
    fn from(a: CampaignCreateArgs) -> Self {
        use commands::campaigns::create::Source;
        let c = a.content;
        let source = match (c.content, c.content_file, c.template) {
            (Some(text), _, _) => Source::Given(Content::Text(text)),
            (_, Some(path), _) => Source::Given(Content::File(path)),
            (_, _, Some(name)) => Source::Template(name),
            // clap requires exactly one of the three.
            _ => Source::Given(Content::Text(String::new())),
        };
        Self {
            name: a.name,
            subject: a.subject,
            source,
        }
    }
}

impl From<StatusArg> for CampaignStatus {
    fn from(s: StatusArg) -> Self {
        match s {
            StatusArg::Draft => CampaignStatus::Draft,
            StatusArg::Scheduled => CampaignStatus::Scheduled,
            StatusArg::Sending => CampaignStatus::Sending,
            StatusArg::Sent => CampaignStatus::Sent,
            StatusArg::Failed => CampaignStatus::Failed,
        }
    }
}

impl From<CampaignListArgs> for commands::campaigns::list::Options {
    fn from(a: CampaignListArgs) -> Self {
        Self {
            status: a.status.map(Into::into),
        }
    }
}

impl From<CampaignSendArgs> for commands::campaigns::send::Options {
    fn from(a: CampaignSendArgs) -> Self {
        Self {
            campaign: a.campaign,
            organization: a.organization,
            yes: a.yes,
        }
    }
}

impl From<CampaignWatchArgs> for commands::campaigns::watch::Options {
    fn from(a: CampaignWatchArgs) -> Self {
        use commands::campaigns::watch::Mode;
        Self {
            mode: match a.mode {
                WatchMode::Auto => Mode::Auto,
                WatchMode::Poll => Mode::Poll,
                WatchMode::Realtime => Mode::Realtime,
            },
            interval_secs: a.interval,
            once: a.once,
            until_done: a.until_done,
        }
    }
}

impl From<CampaignDeliverArgs> for commands::campaigns::deliver::Options {
    fn from(a: CampaignDeliverArgs) -> Self {
        Self {
            campaign: a.campaign,
            rate: a.rate,
            concurrency: a.concurrency,
            follow: a.follow,
            dry_run: a.dry_run,
            resend_unknown: a.resend_unknown,
            settle_unknown: a.settle_unknown,
            attempts: a.attempts,
            retry_delay_secs: a.retry_delay,
            lease_secs: a.lease,
            poll_secs: commands::campaigns::deliver::DEFAULT_POLL_SECS,
            verp: a.verp,
        }
    }
}

impl From<TemplateCreateArgs> for commands::templates::create::Options {
    fn from(a: TemplateCreateArgs) -> Self {
        let content = match (a.content, a.content_file) {
            (Some(text), _) => Content::Text(text),
            (_, Some(path)) => Content::File(path),
            // clap requires one of the two.
            _ => Content::Text(String::new()),
        };
        Self {
            name: a.name,
            subject: a.subject,
            content,
        }
    }
}
