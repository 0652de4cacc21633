//! The SAML state a control store keeps: the connection, the AuthnRequests in flight and the
//! assertion ids already used. Shared by every instance (SQLite on one machine, the
//! ControlTable on AWS), so a response consumed on one Lambda is refused on every other.

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use super::SamlConnection;
use crate::error::StoreError;
use crate::workspace::WorkspaceId;

/// How long an SP-initiated login may take at the IdP.
pub const REQUEST_TTL: Duration = Duration::minutes(10);

/// An AuthnRequest in flight: its id, kept under the key of the browser that started it (a
/// hash of its cookie) until `expires_at`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PendingRequest<'a> {
    pub browser: &'a str,
    pub request_id: &'a str,
    pub expires_at: OffsetDateTime,
}

/// One use of an assertion id, for the replay cache: remembered until `until` (past the
/// assertion's own validity, so a replay is refused for as long as it could be accepted).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AssertionUse<'a> {
    pub id: &'a str,
    pub until: OffsetDateTime,
}

/// SAML connections, AuthnRequest state and the replay cache.
///
/// Entries with an expiry are left out of reads once `now` passes it, whatever the backend's
/// deleter (the SQLite sweeper, DynamoDB's late TTL) has done so far.
#[async_trait]
pub trait SamlStore: Send + Sync {
    async fn saml_connection(&self, ws: &WorkspaceId)
        -> Result<Option<SamlConnection>, StoreError>;
    /// Creates or replaces the workspace's connection.
    async fn put_saml_connection(&self, connection: &SamlConnection) -> Result<(), StoreError>;
    /// Deletes the connection; `false` if there was none.
    async fn delete_saml_connection(&self, ws: &WorkspaceId) -> Result<bool, StoreError>;
    /// The workspaces whose connection names `domain` (a managed domain as
    /// [`super::mail_domain`] writes it) among its managed domains, at most `limit`, in
    /// workspace id order: how the sign-in page finds where an address signs in through SSO.
    /// Every such workspace is named; a backend that keeps a separate index may also name one
    /// whose connection stopped naming the domain in a racing write, so callers check the
    /// connection itself before they act on an answer.
    async fn workspaces_managing_domain(
        &self,
        domain: &str,
        limit: usize,
    ) -> Result<Vec<WorkspaceId>, StoreError>;
    /// Remembers an AuthnRequest id under the key of the browser that started it, until it
    /// expires.
    async fn put_saml_request(
        &self,
        ws: &WorkspaceId,
        request: &PendingRequest<'_>,
    ) -> Result<(), StoreError>;
    /// Takes the request id the browser started: returns it once and deletes it (single use,
    /// atomically: of two concurrent takes only one gets it); `None` if there is none or it
    /// expired by `now`.
    async fn take_saml_request(
        &self,
        ws: &WorkspaceId,
        browser: &str,
        now: OffsetDateTime,
    ) -> Result<Option<String>, StoreError>;
    /// Records the first use of an assertion id, remembered until `assertion.until`. `true`
    /// if it was unused (or its earlier record expired by `now`); `false` if it was used: a
    /// replay. A conditional write, so two instances cannot both see `true`.
    async fn first_use_of_assertion(
        &self,
        ws: &WorkspaceId,
        assertion: &AssertionUse<'_>,
        now: OffsetDateTime,
    ) -> Result<bool, StoreError>;
}
