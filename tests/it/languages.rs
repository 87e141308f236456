//! The language of a run, through the binary: chosen by `--lang`, then
//! `MAILSYNC_LANG`, then the locale; errors, hints, notes and tables in it;
//! `--help` and `--json` in English whatever it is. Needs no stack (the
//! commands stop before any request, or read only local files). The watch
//! screen in both languages: tests/it/campaigns_watch_render.rs and
//! tests/it/campaigns.rs. That every message exists in both languages, and
//! that no sentence for a person is left in the code: the unit tests of
//! src/i18n.

use crate::common;

use std::process::Output;

use common::{stderr, stdout};

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
    // Worded in the locale's language, the one the user reads.
    let o = run(
        BAD_INTERVAL,
        &[("MAILSYNC_LANG", "de"), ("LANG", "fr_FR.UTF-8")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert_eq!(
        stderr(&o),
        "erreur : MAILSYNC_LANG=de : mailsync parle en et fr\n\
         conseil : définissez MAILSYNC_LANG=en ou MAILSYNC_LANG=fr, ou retirez-la pour suivre la locale\n"
    );
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

/// The same command in English and in French (`--lang fr`).
fn both(args: &[&str], env: &[(&str, &str)]) -> (Output, Output) {
    let english = run(args, env);
    let french = run(&[&["--lang", "fr"][..], args].concat(), env);
    (english, french)
}

#[test]
fn configuration_errors_are_translated() {
    let (en, fr) = both(&["dashboard"], &[("SUPABASE_URL", "ftp://example.com")]);
    assert_eq!(en.status.code(), Some(3));
    assert_eq!(fr.status.code(), Some(3));
    assert_eq!(
        stderr(&en),
        "error: SUPABASE_URL (environment) must start with http:// or https://\n"
    );
    assert_eq!(
        stderr(&fr),
        "erreur : SUPABASE_URL (environnement) doit commencer par http:// ou https://\n"
    );
}

#[test]
fn a_hosted_project_without_a_database_url_is_explained_in_french() {
    let hosted = [
        ("SUPABASE_URL", "https://abcdefgh.supabase.co"),
        ("SUPABASE_ANON_KEY", "anon"),
    ];
    let (en, fr) = both(&["db", "verify"], &hosted);
    assert_eq!(en.status.code(), Some(3));
    assert_eq!(fr.status.code(), Some(3));
    let en = stderr(&en);
    assert!(
        en.starts_with(
            "error: SUPABASE_DB_URL is not set; it is required for the db commands on https://abcdefgh.supabase.co (the local stack's database is the default only for the local stack)\n\
             hint: set SUPABASE_DB_URL to the project's connection string, from the Dashboard's Connect dialog"
        ),
        "{en}"
    );
    let fr = stderr(&fr);
    assert!(
        fr.starts_with(
            "erreur : SUPABASE_DB_URL n’est pas défini ; les commandes db en ont besoin sur https://abcdefgh.supabase.co"
        ),
        "{fr}"
    );
    assert!(
        fr.contains("\nconseil : donnez à SUPABASE_DB_URL la chaîne de connexion du projet"),
        "{fr}"
    );
    assert!(!fr.contains("is not set"), "{fr}");
}

#[test]
fn import_file_errors_and_limits_are_translated() {
    let dir = tempfile::tempdir().unwrap();
    let pdf = dir.path().join("notes.pdf");
    std::fs::write(&pdf, "%PDF").unwrap();
    let pdf = pdf.to_str().unwrap();
    let (en, fr) = both(&["import", "--dry-run", pdf], &[]);
    assert_eq!(en.status.code(), Some(2));
    assert_eq!(
        stderr(&en),
        format!("error: {pdf}: unsupported file type; mailsync reads .xlsx, .xlsm, .xlsb, .xls, .ods, .csv and .tsv\n")
    );
    assert_eq!(
        stderr(&fr),
        format!("erreur : {pdf} : type de fichier non pris en charge ; mailsync lit les fichiers .xlsx, .xlsm, .xlsb, .xls, .ods, .csv et .tsv\n")
    );

    let empty = dir.path().join("vide.csv");
    std::fs::write(&empty, "").unwrap();
    let empty = empty.to_str().unwrap();
    let (_, fr) = both(&["import", "--dry-run", empty], &[]);
    assert_eq!(fr.status.code(), Some(1));
    assert_eq!(
        stderr(&fr),
        format!("erreur : {empty} : le fichier est vide\n")
    );

    // A limit: the sheet, the limit (French number format) and the flag.
    let csv = dir.path().join("contacts.csv");
    std::fs::write(&csv, "Acme,a@acme.example\nAcme,b@acme.example\n").unwrap();
    let csv = csv.to_str().unwrap();
    let (en, fr) = both(&["import", "--dry-run", "--max-cells", "3", csv], &[]);
    assert_eq!(en.status.code(), Some(1));
    assert_eq!(
        stderr(&en),
        format!(
            "error: {csv}: sheet \"contacts\" has more than 3 cells, the limit for a sheet; nothing was imported\n\
             hint: if the file is genuine, raise the limit with --max-cells (or MAILSYNC_IMPORT_MAX_CELLS)\n"
        )
    );
    assert_eq!(
        stderr(&fr),
        format!(
            "erreur : {csv} : la feuille \"contacts\" a plus de 3 cellules, la limite pour une feuille ; rien n’a été importé\n\
             conseil : si le fichier est authentique, relevez la limite avec --max-cells (ou MAILSYNC_IMPORT_MAX_CELLS)\n"
        )
    );
}

#[test]
fn usage_errors_of_deliver_and_unsubscribe_are_translated() {
    let (en, fr) = both(&["campaigns", "deliver", "--concurrency", "0"], &[]);
    assert_eq!(en.status.code(), Some(2));
    assert_eq!(
        stderr(&en),
        "error: --concurrency must be between 1 and 64\n"
    );
    assert_eq!(
        stderr(&fr),
        "erreur : --concurrency doit être compris entre 1 et 64\n"
    );
    let (en, fr) = both(&["contacts", "unsubscribe", "nobody"], &[]);
    assert_eq!(en.status.code(), Some(2));
    assert_eq!(
        stderr(&en),
        "error: \"nobody\" is not an email address (nothing was changed)\n"
    );
    assert_eq!(
        stderr(&fr),
        "erreur : \"nobody\" n’est pas une adresse e-mail (rien n’a été changé)\n"
    );
}

#[test]
fn the_database_target_is_french_on_screen_and_english_in_json() {
    // No terminal to confirm on: the target is named, nothing is reset.
    let (en, fr) = both(&["db", "reset"], &[]);
    assert_eq!(fr.status.code(), Some(2));
    assert!(
        stderr(&en).starts_with("Target: database \"postgres\" on 127.0.0.1:54322 as postgres\n"),
        "{}",
        stderr(&en)
    );
    let fr = stderr(&fr);
    assert!(
        fr.starts_with(
            "Cible : la base «\u{a0}postgres\u{a0}» sur 127.0.0.1:54322 en tant que postgres\n\
             erreur : réinitialisation de la base «\u{a0}postgres\u{a0}» sur 127.0.0.1:54322 en tant que postgres refusée sans confirmation"
        ),
        "{fr}"
    );
    let json = run(&["--lang", "fr", "--json", "db", "apply", "--dry-run"], &[]);
    assert!(json.status.success(), "{}", stderr(&json));
    assert!(
        stdout(&json).starts_with(
            r#"{"target":"database \"postgres\" on 127.0.0.1:54322 as postgres","dry_run":true"#
        ),
        "{}",
        stdout(&json)
    );
}

#[test]
fn the_config_table_is_french_and_its_json_english() {
    let table = run(&["--lang", "fr", "config"], &[]);
    assert!(table.status.success(), "{}", stderr(&table));
    let table = stdout(&table);
    for word in [
        "réglage",
        "valeur",
        "origine",
        "par défaut (pile locale)",
        "non défini ; lancez `mailsync login`",
    ] {
        assert!(table.contains(word), "{word}: {table}");
    }
    assert!(!table.contains("default (local stack)"), "{table}");
    let json = run(&["--lang", "fr", "--json", "config"], &[]);
    let json = stdout(&json);
    assert!(
        json.contains(r#""source":"default (local stack)""#),
        "{json}"
    );
    assert!(json.contains("chars)"), "{json}");
    assert!(
        !json.contains("pile locale") && !json.contains("caractères"),
        "{json}"
    );
}
