//! The command line itself: clap's own consistency checks over every
//! command, flag and default (`src/cli/`).

use clap::CommandFactory;

#[test]
fn the_command_line_is_consistent() {
    mailsync::cli::Cli::command().debug_assert();
}
