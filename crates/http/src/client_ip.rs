//! The client address of a request: the socket peer, or, behind trusted proxies, the
//! `X-Forwarded-For` entry the outermost trusted proxy appended.
//!
//! Every proxy appends the address it received the connection from, so the entries a client
//! can forge are on the left and the last `n` were written by the `n` trusted proxies: the
//! client is the `n`-th entry from the right. The leftmost entry is whatever the client sent.

use std::net::{IpAddr, SocketAddr};

use axum::extract::ConnectInfo;
use axum::http::{Extensions, HeaderMap};

use crate::problem::Problem;

/// The header name, as problems name it.
pub const FORWARDED_FOR: &str = "X-Forwarded-For";

/// The client address when a transport other than a TCP listener knows it (Lambda).
#[derive(Debug, Clone, Copy)]
pub struct ClientIp(pub IpAddr);

/// The client address of a request. `trusted_proxies` is how many proxies in front of the
/// server append to `X-Forwarded-For` (0: the header is ignored). Without the header the
/// socket peer is the client (a request that did not pass the proxies); a header that is
/// malformed or shorter than the proxy chain is refused with 400, never replaced by the
/// socket address.
pub fn client_ip(
    headers: &HeaderMap,
    extensions: &Extensions,
    trusted_proxies: usize,
) -> Result<Option<IpAddr>, Problem> {
    if trusted_proxies > 0 {
        if let Some(ip) = forwarded_for(headers, trusted_proxies)? {
            return Ok(Some(ip));
        }
    }
    Ok(extensions
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip())
        .or_else(|| extensions.get::<ClientIp>().map(|c| c.0)))
}

/// The entry the outermost of `trusted` proxies appended; `None` without the header.
fn forwarded_for(headers: &HeaderMap, trusted: usize) -> Result<Option<IpAddr>, Problem> {
    let mut entries = Vec::new();
    for value in headers.get_all("x-forwarded-for") {
        let text = value
            .to_str()
            .map_err(|_| malformed("the header is not valid text"))?;
        entries.extend(text.split(',').map(str::trim));
    }
    if entries.is_empty() {
        return Ok(None);
    }
    let Some(at) = entries.len().checked_sub(trusted) else {
        return Err(malformed(&format!(
            "it has {} entries but {trusted} trusted proxies should have appended one each",
            entries.len()
        )));
    };
    // The proxies' own entries must be addresses too: anything else means the chain is not
    // the one configured.
    let mut chosen = None;
    for (i, entry) in entries.iter().enumerate().skip(at) {
        let ip = parse_entry(entry).ok_or_else(|| {
            malformed(&format!("entry {} ({entry:?}) is not an IP address", i + 1))
        })?;
        chosen.get_or_insert(ip);
    }
    Ok(chosen)
}

/// An address as proxies write it: `203.0.113.7`, `2001:db8::1`, `[2001:db8::1]`, with or
/// without a port (`203.0.113.7:443`, `[2001:db8::1]:443`).
fn parse_entry(entry: &str) -> Option<IpAddr> {
    if let Ok(ip) = entry.parse() {
        return Some(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Some(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|e| e.strip_suffix(']'))
        .and_then(|e| e.parse::<std::net::Ipv6Addr>().ok())
        .map(IpAddr::V6)
}

fn malformed(why: &str) -> Problem {
    Problem::bad_request(
        "invalid-forwarded-for",
        format!("the {FORWARDED_FOR} header cannot name the client: {why}"),
    )
    .field(FORWARDED_FOR)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(forwarded: &[&str]) -> (HeaderMap, Extensions) {
        let mut headers = HeaderMap::new();
        for value in forwarded {
            headers.append("x-forwarded-for", value.parse().unwrap());
        }
        let mut extensions = Extensions::new();
        extensions.insert(ConnectInfo::<SocketAddr>("10.0.0.2:40000".parse().unwrap()));
        (headers, extensions)
    }

    fn ip(forwarded: &[&str], trusted: usize) -> Result<Option<IpAddr>, Problem> {
        let (headers, extensions) = request(forwarded);
        client_ip(&headers, &extensions, trusted)
    }

    fn addr(s: &str) -> Option<IpAddr> {
        Some(s.parse().unwrap())
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored_for_the_socket_peer() {
        assert_eq!(ip(&["203.0.113.7"], 0).unwrap(), addr("10.0.0.2"));
    }

    #[test]
    fn one_trusted_proxy_names_the_rightmost_entry_not_a_spoofed_leftmost_one() {
        // The client sent "1.2.3.4"; the proxy appended the address it saw.
        assert_eq!(
            ip(&["1.2.3.4, 198.51.100.9"], 1).unwrap(),
            addr("198.51.100.9")
        );
    }

    #[test]
    fn two_trusted_proxies_name_the_second_entry_from_the_right() {
        assert_eq!(
            ip(&["1.2.3.4, 198.51.100.9, 10.0.0.1"], 2).unwrap(),
            addr("198.51.100.9")
        );
    }

    #[test]
    fn entries_of_several_header_lines_are_read_in_order() {
        assert_eq!(
            ip(&["1.2.3.4", "198.51.100.9, 10.0.0.1"], 2).unwrap(),
            addr("198.51.100.9")
        );
    }

    #[test]
    fn ipv6_entries_are_read_bare_bracketed_or_with_a_port() {
        assert_eq!(ip(&["::1, 2001:db8::7"], 1).unwrap(), addr("2001:db8::7"));
        assert_eq!(ip(&["[2001:db8::7]"], 1).unwrap(), addr("2001:db8::7"));
        assert_eq!(ip(&["[2001:db8::7]:8443"], 1).unwrap(), addr("2001:db8::7"));
        assert_eq!(ip(&["203.0.113.7:443"], 1).unwrap(), addr("203.0.113.7"));
    }

    #[test]
    fn a_garbage_entry_left_of_the_trusted_chain_is_the_clients_and_ignored() {
        assert_eq!(
            ip(&["not-an-ip, 198.51.100.9"], 1).unwrap(),
            addr("198.51.100.9")
        );
    }

    #[test]
    fn a_malformed_entry_is_a_400_naming_the_header_not_the_socket_address() {
        for value in [
            "unknown",
            "1.2.3.4, ",
            "1.2.3.4, 999.1.1.1",
            "1.2.3.4 5.6.7.8",
        ] {
            let problem = ip(&[value], 1).unwrap_err();
            assert_eq!(problem.status(), 400, "{value}");
            assert_eq!(
                problem.details().field.as_deref(),
                Some(FORWARDED_FOR),
                "{value}"
            );
        }
    }

    #[test]
    fn a_chain_shorter_than_the_trusted_proxies_is_a_400() {
        let problem = ip(&["198.51.100.9"], 2).unwrap_err();
        assert_eq!(problem.status(), 400);
    }

    #[test]
    fn without_the_header_the_socket_peer_is_the_client() {
        assert_eq!(ip(&[], 1).unwrap(), addr("10.0.0.2"));
    }
}
