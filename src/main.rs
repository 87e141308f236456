use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = mailsync::cli::Cli::parse();
    let verbose = cli.global.verbose > 0;
    // The language, for an error before `run` (which sets it too) starts.
    let _ = mailsync::settings::set_language(
        cli.global.lang.map(Into::into),
        cli.global.env_file.as_deref(),
    );
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            let message = mailsync::t!("error-runtime", reason = e.to_string());
            eprintln!("{}", mailsync::t!("error-line", message = message));
            return ExitCode::FAILURE;
        }
    };
    // Ctrl-C and SIGTERM are caught before the command starts (one rule for
    // every command: `mailsync::interrupt`).
    let run = async {
        mailsync::interrupt::install()?;
        mailsync::run(cli).await
    };
    match runtime.block_on(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // In the run's language: `run` set it before anything could fail
            // (or failed to read it, and speaks English).
            let safe = |text: &str| mailsync::output::terminal_safe(text).into_owned();
            eprintln!(
                "{}",
                mailsync::t!("error-line", message = safe(&e.to_string()))
            );
            if let Some(hint) = e.hint() {
                eprintln!("{}", mailsync::t!("hint-line", hint = safe(hint)));
            }
            if let Some(detail) = e.detail().filter(|_| verbose) {
                eprintln!("{}", mailsync::t!("detail-line", detail = safe(detail)));
            }
            ExitCode::from(e.kind().exit_code())
        }
    }
}
