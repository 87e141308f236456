//! `mailsync campaigns create | list | send | deliver | watch | report`: the campaign workflow,
//! through the REST API as the signed-in user.

pub mod create;
pub mod deliver;
pub mod list;
pub mod report;
pub mod send;
pub mod watch;
