//! Which web origins may send tracking requests from a browser (CORS), per workspace.
//!
//! The decision table, for a tracking request and the workspace of its write key:
//!
//! | `Origin` header                          | allowed origins            | decision |
//! |------------------------------------------|----------------------------|----------|
//! | absent (a server, curl, a mobile SDK)    | anything                   | [`Cors::ServerToServer`]: no CORS headers, nothing checked |
//! | `https://shop.example`                   | `https://shop.example`     | [`Cors::Allow`]: echoed in `Access-Control-Allow-Origin` |
//! | `https://www.shop.example`               | `https://*.shop.example`   | allow (one or more labels before the suffix) |
//! | `https://shop.example`                   | `https://*.shop.example`   | refuse: the wildcard needs a subdomain |
//! | `http://shop.example`                    | `https://shop.example`     | refuse: the scheme is part of the origin |
//! | `https://shop.example:8443`              | `https://shop.example`     | refuse: so is the port (default ports are dropped) |
//! | `https://evilshop.example`               | `https://*.shop.example`   | refuse: a suffix matches at a dot only |
//! | anything, `null` included                | `*`                        | allow: only when an admin listed `*` |
//! | anything                                 | none listed (the default)  | refuse |
//! | not an origin (`https://a/b`, `x`)       | anything but `*`           | refuse |
//!
//! A preflight (`OPTIONS`) carries no write key, so no workspace is known: it is answered for
//! any well-formed origin ([`preflight`]) and the actual request is where the workspace's list
//! is enforced; a refused request is not ingested.

use serde::{Deserialize, Serialize};

/// One entry of a workspace's allowed origins: `https://shop.example`, `http://localhost:3000`,
/// `https://*.shop.example` (any subdomain), or `*` (every origin).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct AllowedOrigin(Pattern);

#[derive(Debug, Clone, PartialEq, Eq)]
enum Pattern {
    Any,
    Exact(Origin),
    /// Scheme, `.suffix` (with its leading dot), port.
    Subdomains(Origin),
}

/// A serialized web origin, normalized: lower case, no default port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    scheme: &'static str,
    host: String,
    port: Option<u16>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not an origin: use scheme://host[:port] without a path (https://shop.example), https://*.shop.example for its subdomains, or *")]
pub struct InvalidOrigin;

impl Origin {
    /// Reads an `Origin` header value or a configured origin.
    pub fn parse(s: &str) -> Result<Self, InvalidOrigin> {
        let s = s.trim();
        let (scheme, rest) = s.split_once("://").ok_or(InvalidOrigin)?;
        let scheme = match scheme.to_ascii_lowercase().as_str() {
            "https" => "https",
            "http" => "http",
            _ => return Err(InvalidOrigin),
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@', ' ']) {
            return Err(InvalidOrigin);
        }
        let (host, port) = match rest.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(':') && !p.contains(']') => {
                (h, Some(p.parse::<u16>().map_err(|_| InvalidOrigin)?))
            }
            _ => (rest, None),
        };
        let host = host.to_ascii_lowercase();
        let valid_host = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']'))
        {
            v6.parse::<std::net::Ipv6Addr>().is_ok()
        } else {
            host.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && label
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'*')
            }) && host.len() <= 253
        };
        if !valid_host {
            return Err(InvalidOrigin);
        }
        let default = if scheme == "https" { 443 } else { 80 };
        Ok(Self {
            scheme,
            port: port.filter(|p| *p != default),
            host,
        })
    }
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}://{}", self.scheme, self.host)?;
        match self.port {
            Some(p) => write!(f, ":{p}"),
            None => Ok(()),
        }
    }
}

impl AllowedOrigin {
    pub fn parse(s: &str) -> Result<Self, InvalidOrigin> {
        if s.trim() == "*" {
            return Ok(Self(Pattern::Any));
        }
        let origin = Origin::parse(s)?;
        match origin.host.strip_prefix("*.") {
            Some(suffix) if !suffix.contains('*') && suffix.contains('.') => {
                Ok(Self(Pattern::Subdomains(Origin {
                    host: format!(".{suffix}"),
                    ..origin
                })))
            }
            Some(_) => Err(InvalidOrigin),
            None if origin.host.contains('*') => Err(InvalidOrigin),
            None => Ok(Self(Pattern::Exact(origin))),
        }
    }

    /// Whether a request from `origin` (an `Origin` header value) is allowed.
    pub fn allows(&self, origin: &str) -> bool {
        let (Pattern::Exact(want) | Pattern::Subdomains(want)) = &self.0 else {
            return true;
        };
        let Ok(got) = Origin::parse(origin) else {
            return false;
        };
        if got.scheme != want.scheme || got.port != want.port || got.host.contains('*') {
            return false;
        }
        match &self.0 {
            Pattern::Subdomains(_) => got
                .host
                .strip_suffix(want.host.as_str())
                .is_some_and(|sub| !sub.is_empty()),
            _ => got.host == want.host,
        }
    }
}

crate::newtype::try_from_string!(AllowedOrigin: InvalidOrigin);

impl From<AllowedOrigin> for String {
    fn from(o: AllowedOrigin) -> Self {
        match o.0 {
            Pattern::Any => "*".into(),
            Pattern::Exact(origin) => origin.to_string(),
            Pattern::Subdomains(o) => format!("{}://*{}", o.scheme, o.host_port()),
        }
    }
}

impl Origin {
    fn host_port(&self) -> String {
        match self.port {
            Some(p) => format!("{}:{p}", self.host),
            None => self.host.clone(),
        }
    }
}

/// What to do with a request's `Origin` (see the module's table).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cors {
    /// No `Origin`: not a browser; no CORS headers, nothing checked.
    ServerToServer,
    /// Answer with `Access-Control-Allow-Origin` set to this origin (and `Vary: Origin`).
    Allow(String),
    /// Refuse the request, naming this origin.
    Refuse(String),
}

/// The decision for an actual (non-preflight) request.
pub fn decide(origin: Option<&str>, allowed: &[AllowedOrigin]) -> Cors {
    match origin {
        None => Cors::ServerToServer,
        Some(o) if allowed.iter().any(|a| a.allows(o)) => Cors::Allow(o.to_owned()),
        Some(o) => Cors::Refuse(o.to_owned()),
    }
}

/// The decision for a preflight: any well-formed origin (or `null`) may ask; the actual request
/// is checked against the workspace's list.
pub fn preflight(origin: Option<&str>) -> Cors {
    match origin {
        None => Cors::ServerToServer,
        Some(o) if o == "null" || Origin::parse(o).is_ok_and(|p| !p.host.contains('*')) => {
            Cors::Allow(o.to_owned())
        }
        Some(o) => Cors::Refuse(o.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> Vec<AllowedOrigin> {
        entries
            .iter()
            .map(|e| AllowedOrigin::parse(e).unwrap())
            .collect()
    }

    #[test]
    fn follows_the_decision_table() {
        let allow = |o: &str| Cors::Allow(o.into());
        let refuse = |o: &str| Cors::Refuse(o.into());
        let shop = list(&["https://shop.example"]);
        let subs = list(&["https://*.shop.example"]);
        let any = list(&["*"]);
        let rows: Vec<(Option<&str>, &[AllowedOrigin], Cors)> = vec![
            (None, &shop, Cors::ServerToServer),
            (None, &[], Cors::ServerToServer),
            (
                Some("https://shop.example"),
                &shop,
                allow("https://shop.example"),
            ),
            (
                Some("HTTPS://Shop.Example:443"),
                &shop,
                allow("HTTPS://Shop.Example:443"),
            ),
            (
                Some("https://www.shop.example"),
                &subs,
                allow("https://www.shop.example"),
            ),
            (
                Some("https://a.b.shop.example"),
                &subs,
                allow("https://a.b.shop.example"),
            ),
            (
                Some("https://shop.example"),
                &subs,
                refuse("https://shop.example"),
            ),
            (
                Some("https://evilshop.example"),
                &subs,
                refuse("https://evilshop.example"),
            ),
            (
                Some("https://shop.example.evil"),
                &shop,
                refuse("https://shop.example.evil"),
            ),
            (
                Some("http://shop.example"),
                &shop,
                refuse("http://shop.example"),
            ),
            (
                Some("https://shop.example:8443"),
                &shop,
                refuse("https://shop.example:8443"),
            ),
            (
                Some("https://shop.example"),
                &[],
                refuse("https://shop.example"),
            ),
            (Some("null"), &shop, refuse("null")),
            (
                Some("https://shop.example/x"),
                &shop,
                refuse("https://shop.example/x"),
            ),
            (
                Some("https://*.shop.example"),
                &subs,
                refuse("https://*.shop.example"),
            ),
            (Some("null"), &any, allow("null")),
            (
                Some("https://any.example"),
                &any,
                allow("https://any.example"),
            ),
        ];
        for (origin, allowed, want) in rows {
            assert_eq!(decide(origin, allowed), want, "{origin:?}");
        }
    }

    #[test]
    fn reads_and_writes_back_each_kind_of_entry_normalized() {
        for (input, stored) in [
            ("*", "*"),
            ("https://Shop.Example", "https://shop.example"),
            ("https://shop.example:443", "https://shop.example"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("https://*.shop.example", "https://*.shop.example"),
            ("https://*.shop.example:8443", "https://*.shop.example:8443"),
            ("http://[::1]:8080", "http://[::1]:8080"),
            ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
        ] {
            let parsed = AllowedOrigin::parse(input).unwrap();
            assert_eq!(String::from(parsed.clone()), stored, "{input}");
            assert_eq!(AllowedOrigin::parse(stored), Ok(parsed));
        }
    }

    #[test]
    fn refuses_what_is_not_an_origin() {
        for bad in [
            "",
            "shop.example",
            "ftp://shop.example",
            "https://",
            "https://shop.example/",
            "https://shop.example/path",
            "https://user@shop.example",
            "https://shop.example:99999",
            "https://*.example.com.*",
            "https://a.*.shop.example",
            "https://*.example",
            "https://*",
            "https://sh op.example",
            "**",
        ] {
            assert_eq!(AllowedOrigin::parse(bad), Err(InvalidOrigin), "{bad:?}");
        }
    }

    #[test]
    fn a_preflight_is_answered_for_any_well_formed_origin_and_only_those() {
        assert_eq!(preflight(None), Cors::ServerToServer);
        assert_eq!(
            preflight(Some("https://any.example")),
            Cors::Allow("https://any.example".into())
        );
        assert_eq!(preflight(Some("null")), Cors::Allow("null".into()));
        assert_eq!(
            preflight(Some("javascript:x")),
            Cors::Refuse("javascript:x".into())
        );
    }
}
