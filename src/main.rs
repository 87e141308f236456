use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mailsync::cli::Cli::parse();
    let verbose = cli.global.verbose > 0;
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: starting the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(mailsync::run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", mailsync::output::terminal_safe(&e.to_string()));
            if let Some(hint) = e.hint() {
                eprintln!("hint: {}", mailsync::output::terminal_safe(hint));
            }
            if let Some(detail) = e.detail().filter(|_| verbose) {
                eprintln!("detail: {detail}");
            }
            ExitCode::from(e.kind().exit_code())
        }
    }
}
