//! The values of console sign-in.

use std::fmt;
use std::net::IpAddr;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use time::OffsetDateTime;

use super::{SESSION_IDLE, TOUCH_EVERY};
use crate::clock::Ids;
use crate::email::Email;
use crate::password::PasswordVerifier;
use crate::rbac::Principal;
use crate::user_id::UserId;
use crate::workspace::{User, WorkspaceId};

/// Random bytes in a session or link token.
const TOKEN_BYTES: usize = 32;
/// Their base64url length, without padding.
const TOKEN_CHARS: usize = 43;

/// The browser's secret: 32 random bytes, base64url. Stored nowhere but the browser (stores
/// keep [`TokenHash`]); `Debug` shows nothing of it.
#[derive(Clone, PartialEq, Eq)]
pub struct SessionToken(String);

/// Why a string is not a token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session token")]
pub struct InvalidToken;

impl SessionToken {
    /// A new token from the injected randomness.
    pub fn generate(ids: &dyn Ids) -> Self {
        Self(random_token(ids))
    }

    /// 43 base64url characters that decode to 32 bytes.
    pub fn parse(s: &str) -> Result<Self, InvalidToken> {
        if is_token(s) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidToken)
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// What stores keep.
    pub fn hash(&self) -> TokenHash {
        TokenHash::of(&self.0)
    }

    /// The session's CSRF token: derived from the session token (SHA-256 under its own
    /// label), so it needs no storage, differs from what stores keep, and reveals nothing
    /// of the token it came from.
    pub fn csrf(&self) -> CsrfToken {
        let mut h = Sha256::new();
        h.update(b"tracklayer console csrf v1\0");
        h.update(self.0.as_bytes());
        CsrfToken(URL_SAFE_NO_PAD.encode(h.finalize()))
    }
}

impl fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SessionToken(<redacted>)")
    }
}

/// A new random token (sessions and one-time links).
pub(crate) fn random_token(ids: &dyn Ids) -> String {
    let mut bytes = [0u8; TOKEN_BYTES];
    ids.fill(&mut bytes);
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Is `s` a token's shape (43 base64url characters decoding to 32 bytes)?
pub(crate) fn is_token(s: &str) -> bool {
    s.len() == TOKEN_CHARS
        && URL_SAFE_NO_PAD
            .decode(s)
            .is_ok_and(|b| b.len() == TOKEN_BYTES)
}

/// The SHA-256 (hex) of a session or link token: the only form stores keep. A token has 256
/// random bits, so a plain hash suffices (no salt, no slow hash: nothing to guess).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct TokenHash(String);

impl TokenHash {
    pub fn of(token: &str) -> Self {
        Self(hex::encode(Sha256::digest(token.as_bytes())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TokenHash({}…)", self.0.get(..8).unwrap_or(""))
    }
}

/// A session's public id (`ses_…`): listed and revoked by it; it opens nothing.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct SessionId(String);

crate::newtype::string_newtype!(SessionId: InvalidSessionId, Display);

/// Why a string is not a [`SessionId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a session id (expected ses_<id>)")]
pub struct InvalidSessionId;

impl SessionId {
    pub fn generate(ids: &dyn Ids) -> Self {
        Self(format!("ses_{}", ids.token(20).to_ascii_lowercase()))
    }
    /// `ses_` and 1 to 64 lowercase letters and digits.
    pub fn parse(s: &str) -> Result<Self, InvalidSessionId> {
        let rest = s.strip_prefix("ses_").ok_or(InvalidSessionId)?;
        crate::newtype::lower_alnum(rest, 64)
            .then(|| Self(s.to_owned()))
            .ok_or(InvalidSessionId)
    }
}

/// The session's token against cross-site requests: put in every form, compared in
/// constant time.
#[derive(Clone, PartialEq, Eq)]
pub struct CsrfToken(String);

impl CsrfToken {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    /// Does `presented` equal this token? Constant time in the token's content.
    pub fn matches(&self, presented: &str) -> bool {
        self.0.len() == presented.len() && bool::from(self.0.as_bytes().ct_eq(presented.as_bytes()))
    }
}

impl fmt::Debug for CsrfToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("CsrfToken(<redacted>)")
    }
}

/// Where a sign-in comes from: the address and, from a browser, its `User-Agent`.
#[derive(Clone, PartialEq, Eq)]
pub struct Client {
    pub ip: IpAddr,
    pub user_agent: Option<String>,
}

// The address is personal data: Debug shows only the user agent.
crate::debug_fields!(Client: user_agent);

impl From<IpAddr> for Client {
    fn from(ip: IpAddr) -> Self {
        Self {
            ip,
            user_agent: None,
        }
    }
}

impl Client {
    pub fn new(ip: IpAddr, user_agent: Option<&str>) -> Self {
        Self {
            ip,
            user_agent: user_agent.map(str::to_owned),
        }
    }

    /// The network kept with a session: an IPv4 /24 or IPv6 /48, never the address itself.
    pub fn network(&self) -> String {
        match self.ip {
            IpAddr::V4(v4) => {
                let [a, b, c, _] = v4.octets();
                format!("{a}.{b}.{c}.0/24")
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}::/48", s[0], s[1], s[2])
            }
        }
    }

    /// What failed sign-ins are counted under: the IPv4 address or IPv6 /64 (one host may
    /// hold a whole /64), as SHA-256 so the counter holds no address.
    pub fn failure_key(&self) -> String {
        let source = match self.ip {
            IpAddr::V4(v4) => v4.to_string(),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                format!("{:x}:{:x}:{:x}:{:x}::/64", s[0], s[1], s[2], s[3])
            }
        };
        format!("ip:{}", hex::encode(Sha256::digest(source.as_bytes())))
    }

    /// "Firefox on Linux": browser family and platform, never the full string.
    pub fn user_agent_summary(&self) -> Option<String> {
        let ua = self.user_agent.as_deref()?;
        let browser = [
            ("Edg/", "Edge"),
            ("OPR/", "Opera"),
            ("Firefox/", "Firefox"),
            ("Chrome/", "Chrome"),
            ("Safari/", "Safari"),
            ("curl/", "curl"),
        ]
        .into_iter()
        .find(|(needle, _)| ua.contains(needle))
        .map_or("Other browser", |(_, name)| name);
        let platform = [
            ("Android", "Android"),
            ("iPhone", "iOS"),
            ("iPad", "iOS"),
            ("Windows", "Windows"),
            ("Mac OS X", "macOS"),
            ("CrOS", "ChromeOS"),
            ("Linux", "Linux"),
        ]
        .into_iter()
        .find(|(needle, _)| ua.contains(needle))
        .map(|(_, name)| name);
        Some(match platform {
            Some(p) => format!("{browser} on {p}"),
            None => browser.to_owned(),
        })
    }
}

/// A console session, as listed.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Session {
    pub id: SessionId,
    pub user_id: UserId,
    pub workspace_id: WorkspaceId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub last_seen_at: OffsetDateTime,
    /// The absolute end (created + 7 days), however active the session is.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// The network it began from ([`Client::network`]), never the address.
    pub source_ip: String,
    /// "Firefox on Linux" ([`Client::user_agent_summary`]).
    pub user_agent: Option<String>,
    /// Whether it began through single sign-on (SAML); only such a session mints personal
    /// tokens for a user whose domain enforces SSO.
    #[serde(default)]
    pub sso: bool,
}

crate::debug_fields!(Session: id, user_id, workspace_id, created_at, last_seen_at, expires_at);

impl Session {
    /// When it ends if not seen again: 12 hours after it was last seen, or its absolute end.
    pub fn ends_at(&self) -> OffsetDateTime {
        (self.last_seen_at + SESSION_IDLE).min(self.expires_at)
    }
    pub fn is_live(&self, now: OffsetDateTime) -> bool {
        now < self.ends_at()
    }
    /// Is `now` late enough to write `last_seen_at` again?
    pub fn touch_due(&self, now: OffsetDateTime) -> bool {
        now - self.last_seen_at >= TOUCH_EVERY
    }
}

/// A session with the hash of its token, as stores keep it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSession {
    pub token_hash: TokenHash,
    #[serde(flatten)]
    pub session: Session,
}

/// A new session: the token goes to the browser once, with its CSRF token.
#[derive(Debug, Clone)]
pub struct SignedIn {
    pub token: SessionToken,
    pub session: Session,
    pub csrf: CsrfToken,
}

/// A verified console request: who, with their current role.
#[derive(Debug, Clone)]
pub struct ConsoleSession {
    /// `user:usr_…`, with the user's current role.
    pub principal: Principal,
    pub user: User,
    pub session_id: SessionId,
    pub csrf: CsrfToken,
    /// The session began through single sign-on.
    pub sso: bool,
}

/// What a password credential is found by: SHA-256 (hex) of the lowercase email address, so
/// the credential record holds no address.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct LoginKey(String);

impl LoginKey {
    pub fn of(email: &Email) -> Self {
        Self(hex::encode(Sha256::digest(email.as_str().as_bytes())))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A user's password: which user of which workspace the login belongs to, and the verifier.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credential {
    pub login: LoginKey,
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    pub verifier: PasswordVerifier,
    #[serde(with = "time::serde::rfc3339")]
    pub set_at: OffsetDateTime,
}

crate::debug_fields!(Credential: workspace_id, user_id, set_at);

/// What a one-time link lets its holder do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkKind {
    /// Set a first password (`/invite/<token>`), 7 days.
    Invitation,
    /// Set a new password (`/reset/<token>`), 1 hour.
    PasswordReset,
    /// Sign in without a password (`/sign-in/link/<token>`), 1 hour.
    SignIn,
}

impl LinkKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Invitation => "invitation",
            Self::PasswordReset => "password_reset",
            Self::SignIn => "sign_in",
        }
    }
    /// The console path the link opens, before its token.
    pub fn path(self) -> &'static str {
        match self {
            Self::Invitation => "/invite/",
            Self::PasswordReset => "/reset/",
            Self::SignIn => "/sign-in/link/",
        }
    }
}

/// A one-time link as stored: the hash of its token, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkRecord {
    pub hash: TokenHash,
    pub kind: LinkKind,
    pub workspace_id: WorkspaceId,
    pub user_id: UserId,
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
}

/// A one-time link, to mail or print once. `Debug` hides the URL (it carries the token).
#[derive(Clone, PartialEq, Eq)]
pub struct SignInLink {
    pub url: String,
    pub expires_at: OffsetDateTime,
}

crate::debug_fields!(SignInLink: expires_at);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemIds;

    #[test]
    fn a_session_token_is_32_random_bytes_in_base64url_and_parses_back() {
        let t = SessionToken::generate(&SystemIds);
        assert_eq!(t.as_str().len(), 43);
        assert_eq!(URL_SAFE_NO_PAD.decode(t.as_str()).unwrap().len(), 32);
        assert_eq!(SessionToken::parse(t.as_str()), Ok(t.clone()));
        assert_ne!(SessionToken::generate(&SystemIds), t);
        for bad in [
            "",
            "abc",
            &format!("{}=", t.as_str()),
            &t.as_str().replace(|_| true, "+"),
        ] {
            assert_eq!(SessionToken::parse(bad), Err(InvalidToken), "{bad:?}");
        }
    }

    #[test]
    fn stores_get_the_sha256_of_a_token_never_the_token() {
        let t = SessionToken::parse("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let h = t.hash();
        assert_eq!(
            h.as_str(),
            hex::encode(Sha256::digest(t.as_str().as_bytes()))
        );
        assert!(!h.as_str().contains(t.as_str()));
        assert_eq!(format!("{t:?}"), "SessionToken(<redacted>)");
        assert!(!format!("{h:?}").contains(h.as_str()));
    }

    #[test]
    fn the_csrf_token_differs_per_session_and_from_the_stored_hash_and_matches_only_itself() {
        let a = SessionToken::generate(&SystemIds);
        let b = SessionToken::generate(&SystemIds);
        assert_eq!(a.csrf(), a.csrf());
        assert_ne!(a.csrf(), b.csrf());
        assert_ne!(a.csrf().as_str(), a.hash().as_str());
        assert_ne!(a.csrf().as_str(), a.as_str());
        assert!(a.csrf().matches(a.csrf().as_str()));
        assert!(!a.csrf().matches(b.csrf().as_str()));
        assert!(!a.csrf().matches(""));
        assert!(!a.csrf().matches(&a.csrf().as_str()[1..]));
    }

    #[test]
    fn a_session_keeps_the_network_not_the_address() {
        let v4 = Client::from("203.0.113.77".parse::<IpAddr>().unwrap());
        assert_eq!(v4.network(), "203.0.113.0/24");
        let v6 = Client::from("2001:db8:1234:5678::1".parse::<IpAddr>().unwrap());
        assert_eq!(v6.network(), "2001:db8:1234::/48");
        assert!(!v4.failure_key().contains("203.0.113"));
        // One IPv6 host may hold a /64: its addresses count as one source.
        let other = Client::from("2001:db8:1234:5678::2".parse::<IpAddr>().unwrap());
        assert_eq!(v6.failure_key(), other.failure_key());
    }

    #[test]
    fn a_user_agent_is_kept_as_browser_and_platform_only() {
        let ua = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0";
        let c = Client::new("127.0.0.1".parse().unwrap(), Some(ua));
        assert_eq!(c.user_agent_summary().as_deref(), Some("Firefox on Linux"));
        let chrome = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36";
        let c = Client::new("127.0.0.1".parse().unwrap(), Some(chrome));
        assert_eq!(c.user_agent_summary().as_deref(), Some("Chrome on macOS"));
    }

    #[test]
    fn a_session_id_round_trips_and_refuses_other_shapes() {
        let id = SessionId::generate(&SystemIds);
        assert_eq!(SessionId::parse(id.as_str()), Ok(id.clone()));
        for bad in ["", "ses_", "usr_abc", "ses_ABC", "ses_a-b"] {
            assert_eq!(SessionId::parse(bad), Err(InvalidSessionId), "{bad:?}");
        }
    }
}
