//! `mailsync contacts ...`.

pub mod list;
