//! The port: sessions, one-time links, password credentials and failure counters.

use async_trait::async_trait;
use time::OffsetDateTime;

use super::{
    Credential, LinkKind, LinkRecord, LoginKey, Session, SessionId, StoredSession, TokenHash,
};
use crate::error::StoreError;
use crate::user_id::UserId;
use crate::workspace::WorkspaceId;

/// Console sign-in state, shared by every instance (DynamoDB on AWS, so a session, a link's
/// redemption and a failure count hold across Lambda instances). Every record carries its
/// expiry; reads never return what expired by `now`, whatever the deleter has done so far.
#[async_trait]
pub trait SessionStore: Send + Sync {
    /// Creates a session; `Conflict` if its token hash or id exists.
    async fn create_session(&self, s: &StoredSession) -> Result<(), StoreError>;
    /// The live session (not ended by `now`) whose token hashes to `hash`.
    async fn session_by_token(
        &self,
        hash: &TokenHash,
        now: OffsetDateTime,
    ) -> Result<Option<StoredSession>, StoreError>;
    /// Writes the session's `last_seen_at` (and so its idle expiry) if it still exists; a
    /// session deleted meanwhile stays deleted.
    async fn touch_session(&self, s: &StoredSession) -> Result<(), StoreError>;
    /// The live sessions of one user, oldest first.
    async fn sessions_of(
        &self,
        ws: &WorkspaceId,
        user: &UserId,
        now: OffsetDateTime,
    ) -> Result<Vec<Session>, StoreError>;
    /// The session `id` of the workspace, live or not (until deleted).
    async fn session(
        &self,
        ws: &WorkspaceId,
        id: &SessionId,
    ) -> Result<Option<StoredSession>, StoreError>;
    /// Deletes a session with its token; `false` if there was none.
    async fn delete_session(&self, ws: &WorkspaceId, id: &SessionId) -> Result<bool, StoreError>;
    /// Deletes every session of a user; returns how many.
    async fn delete_sessions_of(&self, ws: &WorkspaceId, user: &UserId) -> Result<u64, StoreError>;

    /// Creates or replaces the password credential of a login.
    async fn put_credential(&self, c: &Credential) -> Result<(), StoreError>;
    async fn credential(&self, login: &LoginKey) -> Result<Option<Credential>, StoreError>;
    /// Deletes a credential; none is no error.
    async fn delete_credential(&self, login: &LoginKey) -> Result<(), StoreError>;

    /// Stores a one-time link; `Conflict` if its hash exists.
    async fn put_link(&self, link: &LinkRecord) -> Result<(), StoreError>;
    /// Consumes a link: deletes it and returns it if it is of `kind` and unexpired at `now`,
    /// in one atomic step, so of two concurrent redemptions at most one gets it.
    async fn redeem_link(
        &self,
        hash: &TokenHash,
        kind: LinkKind,
        now: OffsetDateTime,
    ) -> Result<Option<LinkRecord>, StoreError>;

    /// Adds one to the counter `key` of the window that began at `window`, atomically, and
    /// returns the new count. The counter is unreadable after `expires_at`.
    async fn add_failure(
        &self,
        key: &str,
        window: OffsetDateTime,
        expires_at: OffsetDateTime,
    ) -> Result<u32, StoreError>;
    /// The counter `key` of the window that began at `window` (0 if none or expired).
    async fn failures(
        &self,
        key: &str,
        window: OffsetDateTime,
        now: OffsetDateTime,
    ) -> Result<u32, StoreError>;
    /// Resets the counter `key` of the window that began at `window`.
    async fn clear_failures(&self, key: &str, window: OffsetDateTime) -> Result<(), StoreError>;

    /// Deletes what expired before `now`; backends with native TTL may do nothing.
    async fn sweep(&self, now: OffsetDateTime) -> Result<u64, StoreError>;
}
