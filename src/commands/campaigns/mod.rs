//! `mailsync campaigns create | list | send | deliver | watch`: the campaign workflow,
//! through the REST API as the signed-in user.

pub mod create;
pub mod deliver;
pub mod list;
pub mod send;
pub mod watch;
