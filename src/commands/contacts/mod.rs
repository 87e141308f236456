//! `mailsync contacts ...`.

pub mod list;
pub mod unsubscribe;
