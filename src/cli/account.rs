//! `mailsync login`, `logout`, `whoami`: their arguments, help and mapping
//! to `commands::account`.

use clap::Args;

use super::ConnectArgs;
use crate::commands;

#[derive(Debug, Clone, Args)]
#[command(
    after_help = "The session is saved in your config directory (one file per project URL, mode
0600) and refreshed automatically. MAILSYNC_ACCESS_TOKEN, when set, wins over it.
On the local stack (no Auth server) use: export MAILSYNC_ACCESS_TOKEN=$(scripts/local-stack.sh token UUID)

Examples:
  mailsync login                                  # asks for email and password
  mailsync login --email me@example.com           # asks for the password only
  printf '%s\\n' \"$PASSWORD\" | mailsync login --email ci@example.com --password-stdin"
)]
pub struct LoginArgs {
    /// The account's email
    #[arg(long)]
    pub email: Option<String>,
    /// Read the password from the first line of stdin
    #[arg(long)]
    pub password_stdin: bool,
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  mailsync logout")]
pub struct LogoutArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
}

#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  mailsync whoami
  mailsync --json whoami | jq -r .user_id")]
pub struct WhoamiArgs {
    #[command(flatten)]
    pub connect: ConnectArgs,
}

impl From<LoginArgs> for commands::account::login::Options {
    fn from(a: LoginArgs) -> Self {
        Self {
            email: a.email,
            password_stdin: a.password_stdin,
        }
    }
}
