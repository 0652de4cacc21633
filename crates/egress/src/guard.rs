//! The SSRF guard: which URLs and addresses a destination may point at.
//!
//! Two moments check it. When a destination is configured, [`check_url`] parses the URL, refuses
//! anything but a plain `https` URL with a plain host, and resolves a host name to make sure none
//! of its addresses is internal. When a request is sent, the same parse runs again without DNS
//! ([`check_url_syntax`]: IP literals never reach a resolver), and the client's resolver
//! (`crate::client`) drops forbidden addresses from every lookup, so a name that changed its
//! answer since it was configured (DNS rebinding) still cannot reach an internal address.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use tracklayer_core::ports::EgressError;
use url::{Host, Url};

/// How long configure-time DNS may take.
const DNS_TIMEOUT: Duration = Duration::from_secs(5);

/// What destinations may be reached.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EgressPolicy {
    /// Lifts the guard for local development and tests (`--allow-private-egress`): internal
    /// addresses (loopback, private, unique-local, ...) become reachable, and plain `http`
    /// too, but only to such addresses. Link-local and cloud metadata addresses stay
    /// unreachable ([`NEVER_V4`], [`NEVER_V6`]).
    pub allow_private: bool,
}

/// IPv4 networks no destination may reach: `(network, prefix length, what it is)`.
const BLOCKED_V4: &[(Ipv4Addr, u8, &str)] = &[
    (Ipv4Addr::new(0, 0, 0, 0), 8, "\"this network\""),
    (Ipv4Addr::new(10, 0, 0, 0), 8, "private"),
    (Ipv4Addr::new(100, 64, 0, 0), 10, "carrier-grade NAT"),
    (Ipv4Addr::new(127, 0, 0, 0), 8, "loopback"),
    (
        Ipv4Addr::new(169, 254, 0, 0),
        16,
        "link-local (cloud metadata)",
    ),
    (Ipv4Addr::new(172, 16, 0, 0), 12, "private"),
    (Ipv4Addr::new(192, 0, 0, 0), 24, "IETF protocol assignment"),
    (Ipv4Addr::new(192, 0, 2, 0), 24, "documentation"),
    (Ipv4Addr::new(192, 88, 99, 0), 24, "6to4 relay anycast"),
    (Ipv4Addr::new(192, 168, 0, 0), 16, "private"),
    (Ipv4Addr::new(198, 18, 0, 0), 15, "benchmarking"),
    (Ipv4Addr::new(198, 51, 100, 0), 24, "documentation"),
    (Ipv4Addr::new(203, 0, 113, 0), 24, "documentation"),
    (Ipv4Addr::new(224, 0, 0, 0), 4, "multicast"),
    (Ipv4Addr::new(240, 0, 0, 0), 4, "reserved or broadcast"),
];

/// IPv6 networks no destination may reach. Networks that embed an IPv4 address
/// (`::ffff:0:0/96`, `64:ff9b::/96`, `2002::/16`) are judged by that address instead.
#[rustfmt::skip]
const BLOCKED_V6: &[(Ipv6Addr, u8, &str)] = &[
    // `::`, `::1` and the deprecated IPv4-compatible `::a.b.c.d`.
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96, "unspecified or loopback"),
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48, "local-use NAT64"),
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64, "discard-only"),
    (Ipv6Addr::new(0x2001, 0, 0, 0, 0, 0, 0, 0), 32, "Teredo"),
    (Ipv6Addr::new(0x2001, 2, 0, 0, 0, 0, 0, 0), 48, "benchmarking"),
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32, "documentation"),
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7, "unique local"),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10, "site-local"),
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8, "multicast"),
];

/// Networks no policy opens, not even private egress: link-local, where cloud metadata
/// services answer (169.254.169.254).
const NEVER_V4: &[(Ipv4Addr, u8, &str)] = &[(
    Ipv4Addr::new(169, 254, 0, 0),
    16,
    "link-local (cloud metadata)",
)];

/// IPv6 networks no policy opens: AWS's metadata service (`fd00:ec2::254`) and link-local.
const NEVER_V6: &[(Ipv6Addr, u8, &str)] = &[
    (
        Ipv6Addr::new(0xfd00, 0xec2, 0, 0, 0, 0, 0, 0x254),
        128,
        "cloud metadata",
    ),
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10, "link-local"),
];

/// What kind of address `ip` is, if even private egress may not reach it.
fn never_reason(ip: IpAddr) -> Option<&'static str> {
    reason_in(ip, NEVER_V4, NEVER_V6)
}

/// Why `policy` does not let a request reach `ip` (over plain `http` if `plain_http`), as
/// the end of a sentence ("… is a loopback address"); `None` if it may.
pub(crate) fn refusal(ip: IpAddr, policy: &EgressPolicy, plain_http: bool) -> Option<String> {
    if !policy.allow_private {
        return forbidden_reason(ip).map(|why| format!("a {why} address"));
    }
    if let Some(why) = never_reason(ip) {
        return Some(format!(
            "a {why} address, which private egress never allows"
        ));
    }
    if plain_http && forbidden_reason(ip).is_none() {
        return Some(
            "a public address: plain http may reach only private or loopback addresses, use https"
                .to_owned(),
        );
    }
    None
}

/// Whether no destination may reach `ip`: loopback, private, link-local, CGNAT, unique-local,
/// multicast, reserved and documentation ranges, and IPv6 forms that embed such an IPv4 address.
pub fn is_forbidden(ip: IpAddr) -> bool {
    forbidden_reason(ip).is_some()
}

/// What kind of address `ip` is, if no destination may reach it.
pub(crate) fn forbidden_reason(ip: IpAddr) -> Option<&'static str> {
    reason_in(ip, BLOCKED_V4, BLOCKED_V6)
}

/// The name of the first network of `v4` or `v6` holding `ip` (an IPv6 address that embeds an
/// IPv4 one is judged by that address).
fn reason_in(
    ip: IpAddr,
    v4: &[(Ipv4Addr, u8, &'static str)],
    v6: &[(Ipv6Addr, u8, &'static str)],
) -> Option<&'static str> {
    let find_v4 = |a: Ipv4Addr| {
        v4.iter()
            .find(|(net, len, _)| in_v4(a, *net, *len))
            .map(|(_, _, why)| *why)
    };
    match ip {
        IpAddr::V4(a) => find_v4(a),
        IpAddr::V6(a) => match embedded_v4(a) {
            Some(inner) => find_v4(inner),
            None => v6
                .iter()
                .find(|(net, len, _)| in_v6(a, *net, *len))
                .map(|(_, _, why)| *why),
        },
    }
}

/// The IPv4 address carried by an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-translated
/// (`::ffff:0:a.b.c.d`), NAT64 (`64:ff9b::a.b.c.d`) or 6to4 (`2002:aabb:ccdd::`) address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let bits = u128::from(ip);
    let low32 = Ipv4Addr::from(bits as u32);
    let mapped = Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0);
    let translated = Ipv6Addr::new(0, 0, 0, 0, 0xffff, 0, 0, 0);
    let nat64 = Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0);
    let six_to_four = Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0);
    if in_v6(ip, mapped, 96) || in_v6(ip, translated, 96) || in_v6(ip, nat64, 96) {
        Some(low32)
    } else if in_v6(ip, six_to_four, 16) {
        Some(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        None
    }
}

fn in_v4(ip: Ipv4Addr, net: Ipv4Addr, len: u8) -> bool {
    let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
    u32::from(ip) & mask == u32::from(net) & mask
}

fn in_v6(ip: Ipv6Addr, net: Ipv6Addr, len: u8) -> bool {
    let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
    u128::from(ip) & mask == u128::from(net) & mask
}

/// A destination URL that passed every check that needs no DNS.
#[derive(Debug, Clone)]
pub(crate) struct CheckedUrl {
    pub(crate) url: Url,
    pub(crate) host: CheckedHost,
    /// The scheme is `http` (only with private egress, and only to internal addresses).
    pub(crate) plain_http: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CheckedHost {
    /// An IP literal; already checked against the policy.
    Ip(IpAddr),
    /// A host name; its addresses are checked when it is resolved.
    Name(String),
}

/// Checks a destination URL when it is configured: [`check_url_syntax`], then resolves a host
/// name and refuses it if *any* of its addresses is one the policy does not reach. With private
/// egress, an `https` name is not resolved (its addresses are checked at connect time); an
/// `http` name must resolve, and only to private or loopback addresses.
///
/// Messages never include the URL's query, which may carry an access token.
pub async fn check_url(url: &str, policy: &EgressPolicy) -> Result<(), EgressError> {
    let checked = parse(url, policy)?;
    let CheckedHost::Name(name) = &checked.host else {
        return Ok(());
    };
    if policy.allow_private && !checked.plain_http {
        return Ok(());
    }
    let lookup = tokio::net::lookup_host((name.as_str(), 0));
    let addrs = tokio::time::timeout(DNS_TIMEOUT, lookup)
        .await
        .map_err(|_| EgressError::Timeout(DNS_TIMEOUT))?
        .map_err(|e| EgressError::Connect(format!("cannot resolve {name}: {e}")))?;
    let mut any = false;
    for addr in addrs {
        any = true;
        if let Some(why) = refusal(addr.ip(), policy, checked.plain_http) {
            return Err(EgressError::Refused(format!(
                "{name} resolves to {}, {why}",
                addr.ip()
            )));
        }
    }
    if !any {
        return Err(EgressError::Connect(format!("{name} has no addresses")));
    }
    Ok(())
}

/// The checks of [`check_url`] that need no DNS: the scheme is `https` (or `http` when private
/// egress is allowed), there are no credentials, the host is a plain hostname or IP address
/// (no decimal, hex, octal or short IPv4 forms, no percent-encoding), and the policy reaches an
/// IP literal over the scheme. Run again before every request.
pub fn check_url_syntax(url: &str, policy: &EgressPolicy) -> Result<(), EgressError> {
    parse(url, policy).map(|_| ())
}

pub(crate) fn parse(raw: &str, policy: &EgressPolicy) -> Result<CheckedUrl, EgressError> {
    let refuse = |msg: &str| Err(EgressError::Refused(msg.to_owned()));
    // The URL parser silently drops tabs and newlines and reads `\` as `/`; refusing them keeps
    // what the parser sees and what `raw_host` sees the same.
    if raw
        .chars()
        .any(|c| c.is_whitespace() || c.is_control() || c == '\\')
    {
        return refuse("the URL contains whitespace, control characters or a backslash");
    }
    let url = Url::parse(raw).map_err(|e| EgressError::Refused(format!("not a valid URL: {e}")))?;
    let plain_http = match url.scheme() {
        "https" => false,
        "http" if policy.allow_private => true,
        "http" => return refuse("plain http is not allowed: use https"),
        other => {
            return Err(EgressError::Refused(format!(
                "the URL scheme {other} is not allowed: use https"
            )))
        }
    };
    if !url.username().is_empty() || url.password().is_some() {
        return refuse("credentials in the URL are not allowed");
    }
    let Some(written) = raw_host(raw).filter(|h| !h.is_empty()) else {
        return refuse("the URL has no host");
    };
    let host = match url.host() {
        None => return refuse("the URL has no host"),
        Some(Host::Ipv4(ip)) => {
            // The parser accepts `2130706433`, `0x7f.1`, `0177.0.0.1` and `127.1` as 127.0.0.1;
            // other resolvers may read such forms differently, so only the canonical one passes.
            if written != ip.to_string() {
                return refuse("the host is not a plain dotted-quad address");
            }
            CheckedHost::Ip(IpAddr::V4(ip))
        }
        Some(Host::Ipv6(ip)) => CheckedHost::Ip(IpAddr::V6(ip)),
        Some(Host::Domain(name)) => {
            let plain = written.chars().all(|c| {
                c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_') || !c.is_ascii()
            });
            if !plain || (written.is_ascii() && written.to_ascii_lowercase() != name) {
                return refuse("the host is not a plain hostname");
            }
            CheckedHost::Name(name.to_owned())
        }
    };
    if let CheckedHost::Ip(ip) = host {
        if let Some(why) = refusal(ip, policy, plain_http) {
            return Err(EgressError::Refused(format!("{ip} is {why}")));
        }
    }
    Ok(CheckedUrl {
        url,
        host,
        plain_http,
    })
}

/// The host as written in `raw` (brackets kept for IPv6), before the parser normalized it.
fn raw_host(raw: &str) -> Option<&str> {
    let (_, rest) = raw.split_once("://")?;
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let authority = &rest[..end];
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if host_port.starts_with('[') {
        return host_port.find(']').map(|i| &host_port[..=i]);
    }
    Some(host_port.split_once(':').map_or(host_port, |(h, _)| h))
}

#[async_trait::async_trait]
impl tracklayer_core::ports::UrlGuard for EgressPolicy {
    async fn check(&self, url: &str) -> Result<(), EgressError> {
        check_url(url, self).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const STRICT: EgressPolicy = EgressPolicy {
        allow_private: false,
    };
    const LAX: EgressPolicy = EgressPolicy {
        allow_private: true,
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("a test address")
    }

    #[test]
    fn forbids_internal_reserved_and_embedded_internal_addresses() {
        let forbidden = [
            "0.0.0.0",
            "0.255.255.255",
            "10.0.0.1",
            "10.255.255.255",
            "100.64.0.1",
            "100.127.255.255",
            "127.0.0.1",
            "127.255.255.254",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "::127.0.0.1",
            "fc00::1",
            "fd12:3456::1",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "ff05::2",
            "::ffff:10.0.0.1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "::ffff:0:192.168.0.1",
            "64:ff9b::a9fe:a9fe",
            "64:ff9b::127.0.0.1",
            "64:ff9b:1::8.8.8.8",
            "2002:7f00:1::",
            "2002:a9fe:a9fe::1",
            "2001:db8::1",
            "2001:0::1",
            "100::1",
        ];
        for s in forbidden {
            assert!(is_forbidden(ip(s)), "{s} should be forbidden");
        }
    }

    #[test]
    fn allows_public_addresses_including_the_edges_of_blocked_ranges() {
        let allowed = [
            "1.1.1.1",
            "8.8.8.8",
            "157.240.22.35",
            "9.255.255.255",
            "11.0.0.0",
            "100.63.255.255",
            "100.128.0.0",
            "126.255.255.255",
            "128.0.0.0",
            "169.253.255.255",
            "169.255.0.0",
            "172.15.255.255",
            "172.32.0.0",
            "192.0.1.0",
            "192.167.255.255",
            "192.169.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2a03:2880:f12f:83:face:b00c:0:25de",
            "2001:4860:4860::8888",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
            "64:ff9b::808:808",
            "2002:808:808::1",
            "fbff:ffff::1",
            "fe00::1",
        ];
        for s in allowed {
            assert!(!is_forbidden(ip(s)), "{s} should be allowed");
        }
    }

    #[test]
    fn accepts_plain_https_urls_with_hostnames_and_public_literals() {
        let ok = [
            "https://graph.facebook.com/v19.0/123/events?access_token=abc",
            "https://www.google-analytics.com/mp/collect?measurement_id=G-1&api_secret=s",
            "https://business-api.tiktok.com/open_api/v1.3/event/track/",
            "https://hooks.example.com:8443/tracklayer",
            "https://8.8.8.8/x",
            "https://[2001:4860:4860::8888]/x",
            "https://[::ffff:8.8.8.8]/x",
            "https://bücher.example/x",
            "https://my_host.example/x",
        ];
        for url in ok {
            assert!(check_url_syntax(url, &STRICT).is_ok(), "{url} should pass");
        }
    }

    #[test]
    fn refuses_urls_that_are_not_plain_https_to_a_plain_host() {
        let refused = [
            "http://example.com/",
            "ftp://example.com/",
            "file:///etc/passwd",
            "gopher://example.com/",
            "https://user:pass@example.com/", // pragma: allowlist secret
            "https://user@example.com/",
            "https://example.com\\@127.0.0.1/",
            "https://exam\tple.com/",
            " https://example.com/",
            "https:///path-only",
            "not a url",
            "https://ex%61mple.com/",
        ];
        assert_refused(&refused, &STRICT);
    }

    /// Each of `urls` is refused under `policy`.
    fn assert_refused(urls: &[&str], policy: &EgressPolicy) {
        for url in urls {
            assert!(
                matches!(check_url_syntax(url, policy), Err(EgressError::Refused(_))),
                "{url} should be refused"
            );
        }
    }

    #[test]
    fn refuses_internal_ip_literals_in_every_spelling() {
        let refused = [
            "https://127.0.0.1/",
            "https://10.0.0.1/",
            "https://169.254.169.254/latest/meta-data/",
            "https://100.64.0.1/",
            "https://0.0.0.0/",
            "https://[::1]/",
            "https://[::ffff:10.0.0.1]/",
            "https://[::ffff:a9fe:a9fe]/",
            "https://[64:ff9b::7f00:1]/",
            "https://[fd00::1]/",
            "https://[fe80::1]/",
            "https://[2001:db8::1]/",
            // Odd IPv4 spellings a parser or resolver may accept.
            "https://2130706433/",
            "https://0x7f000001/",
            "https://0x7f.1/",
            "https://0177.0.0.1/",
            "https://127.1/",
            "https://127.000.000.001/",
            "https://%31%32%37.0.0.1/",
            "https://１２７.0.0.1/",
        ];
        assert_refused(&refused, &STRICT);
    }

    #[test]
    fn refuses_odd_ip_spellings_even_when_private_egress_is_allowed() {
        assert_refused(
            &[
                "http://2130706433/",
                "http://0x7f.1/",
                "http://8.8.2056/",
                "http://010.0.0.1/",
            ],
            &LAX,
        );
    }

    #[test]
    fn allows_http_and_internal_literals_when_private_egress_is_allowed() {
        for url in [
            "http://127.0.0.1:8080/hook",
            "https://10.0.0.1/",
            "http://[::1]:3000/",
            "http://localhost:9000/",
        ] {
            assert!(check_url_syntax(url, &LAX).is_ok(), "{url} should pass");
        }
    }

    #[test]
    fn refusal_messages_never_carry_the_query() {
        for url in [
            "http://example.com/?access_token=SECRET",
            "https://127.0.0.1/?access_token=SECRET",
            "https://2130706433/?access_token=SECRET",
            "https://u:p@example.com/?access_token=SECRET",
        ] {
            let Err(err) = check_url_syntax(url, &STRICT) else {
                panic!("{url} should be refused");
            };
            assert!(!err.to_string().contains("SECRET"), "{err}");
        }
    }

    #[test]
    fn names_the_kind_of_a_forbidden_address() {
        let Err(err) = check_url_syntax("https://169.254.169.254/", &STRICT) else {
            panic!("the metadata address should be refused");
        };
        assert_eq!(
            err.to_string(),
            "egress refused: 169.254.169.254 is a link-local (cloud metadata) address"
        );
    }

    #[test]
    fn reads_the_host_as_written() {
        assert_eq!(raw_host("https://a.b:1/c?d"), Some("a.b"));
        assert_eq!(raw_host("https://[::1]:8/"), Some("[::1]"));
        assert_eq!(raw_host("https://u@h.example#x"), Some("h.example"));
        assert_eq!(raw_host("no-scheme"), None);
    }
}
