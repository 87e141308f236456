//! `mailsync contacts list | export`.

pub mod export;
pub mod list;
pub mod unsubscribe;
