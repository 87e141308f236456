//! `mailsync login`, `logout`, `whoami`: their arguments and mapping to
//! `commands::account`.

use clap::Args;

use super::ConnectArgs;
use crate::commands;

#[derive(Debug, Clone, Args)]
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

impl From<LoginArgs> for commands::account::login::Options {
    fn from(a: LoginArgs) -> Self {
        Self {
            email: a.email,
            password_stdin: a.password_stdin,
        }
    }
}
