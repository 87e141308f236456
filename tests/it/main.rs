//! The integration tests, one binary: a module per command group (or
//! concern), the harness in `common`, workbook builders in `workbooks`.
//! Tests that need the local stack fail, never skip, when `CI` is set.

mod common;
mod workbooks;

mod account;
mod analytics;
mod bench_import;
mod bench_send;
mod bounces_fetch;
mod bounces_scan;
mod campaigns;
mod campaigns_deliver;
mod campaigns_deliver_dsn;
mod campaigns_deliver_smtp;
mod campaigns_watch_failures;
mod campaigns_watch_quota;
mod campaigns_watch_realtime;
mod campaigns_watch_render;
mod campaigns_watch_terminal;
mod ci_recipe;
mod cli;
mod completions;
mod config;
mod config_local_stack;
mod contacts_export;
mod db;
mod db_migration;
mod db_ownership;
mod db_schema_cache;
mod db_tls;
mod deliver_pacing;
mod delivery_reports;
mod errors;
mod help;
mod hosted_client;
mod hosted_sql;
mod hosted_stack;
mod import;
mod import_encoding;
mod import_formats;
mod import_fuzz;
mod import_hostile;
mod languages;
mod mail_stack;
mod readme;
mod realtime_hosted;
mod rest_retries;
mod rls;
mod schema_files;
mod schema_sql;
mod secrets;
mod send_pages;
mod shared_project;
mod signals;
