//! `mailsync login | logout | whoami`: the user's session with Supabase Auth.

pub mod login;
pub mod logout;
pub mod whoami;
