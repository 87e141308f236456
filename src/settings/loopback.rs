//! The one rule for "this machine": a host is local when it is an IP
//! literal in 127.0.0.0/8, `::1`, or exactly `localhost` (any case, one
//! optional trailing dot). Nothing is resolved and nothing else counts:
//! `127.relay.example.com` or `localhost.example.com` are other machines.
//! The project URL (plain `http://` allowed), the database (TLS preferred
//! rather than required), the SMTP server (no STARTTLS) and the bounce
//! mailbox (`imap://`) all ask this one question.

use std::net::IpAddr;

use url::{Host, Url};

/// Whether `host` (as written in a URL or a libpq `host=`; an IPv6 literal
/// with or without its brackets) is this machine.
pub fn is_loopback_host(host: &str) -> bool {
    let bare = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    if let Ok(ip) = bare.parse::<IpAddr>() {
        return ip.is_loopback();
    }
    let name = bare.strip_suffix('.').unwrap_or(bare);
    name.eq_ignore_ascii_case("localhost")
}

/// Whether a URL's host is this machine (see [`is_loopback_host`]). The
/// host as parsed: an IPv4 address written another way (`127.1`,
/// `0x7f.0.0.1`) is the address the URL parser reads in it.
pub fn is_loopback_url(url: &Url) -> bool {
    match url.host() {
        Some(Host::Ipv4(ip)) => ip.is_loopback(),
        Some(Host::Ipv6(ip)) => ip.is_loopback(),
        Some(Host::Domain(name)) => is_loopback_host(name),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_addresses_and_localhost_are_local() {
        for local in [
            "127.0.0.1",
            "127.0.0.53",
            "127.255.255.254",
            "::1",
            "[::1]",
            "0:0:0:0:0:0:0:1",
            "localhost",
            "LocalHost",
            "localhost.",
        ] {
            assert!(is_loopback_host(local), "{local}");
        }
        for remote in [
            "127.relay.example.com",
            "127.0.0.1.example.com",
            "127.0.0.1.nip.io",
            "localhost.example.com",
            "mylocalhost",
            "localhost..",
            "128.0.0.1",
            "10.0.0.1",
            "::2",
            "[::ffff:8.8.8.8]",
            "smtp.example.com",
            "",
        ] {
            assert!(!is_loopback_host(remote), "{remote}");
        }
    }

    #[test]
    fn urls_are_judged_by_their_parsed_host() {
        for (url, local) in [
            ("smtp://user:pw@127.relay.example.com:587", false),
            ("smtp://user:pw@127.0.0.1:2525", true),
            ("imap://u:p@localhost/INBOX", true),
            ("imap://u:p@[::1]:143/INBOX", true),
            ("postgresql://u:p@127.0.0.2:5432/db", true),
            ("postgresql://u:p@db.localhost.example.com/db", false),
            ("http://127.1:54321", true),
            ("https://abc.supabase.co", false),
        ] {
            let parsed = Url::parse(url).unwrap();
            assert_eq!(is_loopback_url(&parsed), local, "{url}");
        }
    }
}
