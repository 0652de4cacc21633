//! Console sign-in: sessions behind an opaque token, one-time links, password credentials and
//! failed-sign-in counters, and the [`SessionStore`] port that keeps them.
//!
//! A session token is 32 random bytes (base64url, 43 characters) that only the browser keeps:
//! stores hold its SHA-256 ([`TokenHash`]), so a copy of the store signs nobody in. Sessions
//! end 12 hours after they were last seen or 7 days after they began, whichever is first.
//! One-time links (invitation, password reset, sign-in) are tokens of the same kind, stored
//! hashed, consumed by one atomic delete.

mod store;
mod types;

pub use store::SessionStore;
pub(crate) use types::{is_token, random_token};
pub use types::{
    Client, ConsoleSession, Credential, CsrfToken, LinkKind, LinkRecord, LoginKey, Session,
    SessionId, SessionToken, SignInLink, SignedIn, StoredSession, TokenHash,
};

use time::Duration;

/// A session ends this long after it was last seen.
pub const SESSION_IDLE: Duration = Duration::hours(12);
/// A session ends this long after it began, however active.
pub const SESSION_ABSOLUTE: Duration = Duration::days(7);
/// `last_seen_at` is written at most this often per session.
pub const TOUCH_EVERY: Duration = Duration::minutes(1);
/// An invitation link is valid this long.
pub const INVITATION_VALID: Duration = Duration::days(7);
/// A password-reset or sign-in link is valid this long.
pub const RESET_VALID: Duration = Duration::hours(1);
/// Failed sign-ins are counted in fixed windows of this length.
pub const FAILURE_WINDOW: Duration = Duration::minutes(15);
/// Failed sign-ins allowed per account (email address, known or not) per window; the next
/// attempt is refused (429) until the window ends.
pub const ACCOUNT_FAILURE_LIMIT: u32 = 5;
/// Failed sign-ins allowed per source address (IPv4 address, IPv6 /64) per window.
pub const IP_FAILURE_LIMIT: u32 = 20;
/// Password-reset mails sent per account per window; more requests are answered alike and
/// send nothing.
pub const RESET_MAIL_LIMIT: u32 = 3;
/// A refused password sign-in is answered no sooner than this after it began, known account
/// or not: a wrong password also writes the account's audit entry, which an unknown account
/// has no workspace for, and under load that write alone took ~60 ms (the timing test saw an
/// unknown account answered in 45 ms and a wrong password in 104). The work is ~100 ms on
/// AWS (argon2id and four store calls); the floor hides it unless the machine is far slower.
pub const SIGN_IN_REFUSAL_FLOOR: std::time::Duration = std::time::Duration::from_millis(250);
/// A password-reset request is answered no sooner than this after it began, whether a mail
/// went out (a link written, a mail sent: SES, ~100-200 ms) or not (one store call).
pub const RESET_REQUEST_FLOOR: std::time::Duration = std::time::Duration::from_millis(500);
