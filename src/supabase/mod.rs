//! The Supabase services mailsync talks to over HTTP: the REST API
//! ([`rest`]), Auth ([`auth`]), the saved session ([`session`]), the user a
//! command acts as ([`user`]) and Realtime ([`realtime`]). Nothing here
//! prints or knows about commands: commands call these and report through
//! [`crate::output::Output`].

pub mod auth;
pub mod lookup;
pub mod realtime;
pub mod rest;
pub mod session;
pub mod user;
