//! The language of a run, through the binary: chosen by `--lang`, then
//! `MAILSYNC_LANG`, then the locale; errors and hints in it; `--help` in
//! English whatever it is. Needs no stack (the commands stop at a usage
//! error before any request). The watch screen in both languages:
//! tests/campaigns_watch_render.rs and tests/campaigns.rs.

mod common;

use std::process::Output;

use common::stderr;

/// The binary with nothing from the machine or from cargo's test
/// environment (no language settings either), then `env` added.
fn run(args: &[&str], env: &[(&str, &str)]) -> Output {
    let dir = tempfile::tempdir().unwrap();
    common::unconfigured(dir.path())
        .args(args)
        .envs(env.iter().copied())
        .output()
        .unwrap()
}

const BAD_INTERVAL: &[&str] = &["campaigns", "watch", "--interval", "0.1"];

#[test]
fn errors_are_in_english_by_default() {
    let o = run(BAD_INTERVAL, &[]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "error: --interval must be at least 0.5 seconds\n"
    );
}

#[test]
fn a_french_locale_gives_french_errors_in_posix_order() {
    let french = "erreur : --interval doit valoir au moins 0,5 seconde\n";
    let o = run(BAD_INTERVAL, &[("LANG", "fr_FR.UTF-8")]);
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(stderr(&o), french);
    let o = run(BAD_INTERVAL, &[("LC_MESSAGES", "fr_CA"), ("LANG", "C")]);
    assert_eq!(stderr(&o), french);
    // LC_ALL outranks the others, both ways.
    let o = run(BAD_INTERVAL, &[("LC_ALL", "C"), ("LANG", "fr_FR.UTF-8")]);
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    let o = run(
        BAD_INTERVAL,
        &[("LC_ALL", "fr_BE.UTF-8"), ("LANG", "en_US")],
    );
    assert_eq!(stderr(&o), french);
}

#[test]
fn the_flag_outranks_mailsync_lang_which_outranks_the_locale() {
    let o = run(
        &[&["--lang", "en"][..], BAD_INTERVAL].concat(),
        &[("LC_ALL", "fr_FR")],
    );
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
    let o = run(
        &[&["--lang", "fr"][..], BAD_INTERVAL].concat(),
        &[("MAILSYNC_LANG", "en")],
    );
    assert!(stderr(&o).starts_with("erreur : "), "{}", stderr(&o));
    let o = run(BAD_INTERVAL, &[("MAILSYNC_LANG", "fr")]);
    assert!(stderr(&o).starts_with("erreur : "), "{}", stderr(&o));
    let o = run(
        BAD_INTERVAL,
        &[("MAILSYNC_LANG", "en"), ("LC_ALL", "fr_FR")],
    );
    assert!(stderr(&o).starts_with("error: "), "{}", stderr(&o));
}

#[test]
fn an_unknown_language_is_a_usage_error() {
    let o = run(BAD_INTERVAL, &[("MAILSYNC_LANG", "de")]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("MAILSYNC_LANG=de"), "{}", stderr(&o));
    let o = run(&["--lang", "de", "dashboard"], &[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("[possible values: en, fr]"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn help_stays_in_english() {
    let english = run(&["campaigns", "watch", "--help"], &[]);
    let french = run(
        &["--lang", "fr", "campaigns", "watch", "--help"],
        &[("LANG", "fr_FR.UTF-8")],
    );
    assert!(english.status.success() && french.status.success());
    assert_eq!(english.stdout, french.stdout);
    assert!(String::from_utf8_lossy(&english.stdout).contains("--lang <LANG>"));
}
