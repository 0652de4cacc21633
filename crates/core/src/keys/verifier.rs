//! The one key verifier, for the tracking API (ingest write keys) and the admin API (personal
//! access tokens and service tokens).
//!
//! A presented key `tl_<kind>_<region>_<id>_<secret>` is accepted only when the stored record
//! of `<id>` has the presented kind, a kind the audience accepts, the presented prefix, and a
//! workspace of the presented region; bcrypt covers only the secret, so the prefix is never
//! trusted on its own.
//!
//! Cost control, before any bcrypt: the workspace's IP blocklist; a wrong secret already seen
//! for the key (remembered by SHA-256, never in clear) is refused without bcrypt; too many
//! failures per source IP or per key id answer [`AuthError::Throttled`] until the window ends.
//!
//! Freshness: a verified key is remembered (by SHA-256 of the whole key) for
//! [`VERIFIED_TTL`], and its record is read again at most every [`REVALIDATE_EVERY`] (one
//! store read, no bcrypt), so a key revoked by another process stops within that time. In
//! this process a change published on [`crate::invalidation::Invalidations`] forces the next
//! request to read the record again.
//!
//! Usage: an accepted key's `last_used_at` is written through [`KeyUsage`] at most once per
//! [`USAGE_EVERY`] per key in this process, never once per request; a failed write is logged
//! and the request goes on.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use serde::Serialize;
use sha2::{Digest, Sha256};
use time::{Duration, OffsetDateTime};

use super::{ApiKey, ApiKeyRecord, KeyId, KeyKind, KeyRefusal};
use crate::cache::TtlCache;
use crate::clock::Clock;
use crate::error::StoreError;
use crate::invalidation::{Change, Invalidate};
use crate::ports::{ControlReader, KeyUsage};
use crate::workspace::{Region, Workspace, WorkspaceId};

/// How long a bcrypt verdict is kept.
pub const VERIFIED_TTL: Duration = Duration::seconds(60);
/// How often a remembered key's record and its workspace's settings are read again.
pub const REVALIDATE_EVERY: Duration = Duration::seconds(5);
/// How often an accepted key's `last_used_at` is written, at most, per key and process.
pub const USAGE_EVERY: Duration = Duration::minutes(1);

/// Which API a key is presented to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// The tracking API: ingest write keys only.
    Tracking,
    /// The admin API: personal access tokens and service tokens.
    Admin,
    /// SCIM provisioning at `/scim/v2`: SCIM tokens only.
    Scim,
}

impl Audience {
    pub fn accepts(self, kind: KeyKind) -> bool {
        match self {
            Self::Tracking => kind == KeyKind::Ingest,
            Self::Admin => matches!(kind, KeyKind::Pat | KeyKind::Svc),
            Self::Scim => kind == KeyKind::Scim,
        }
    }

    fn as_str(self) -> &'static str {
        match self {
            Self::Tracking => "tracking",
            Self::Admin => "admin",
            Self::Scim => "scim",
        }
    }
}

/// Why a key was not accepted, by what the caller should do.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("{}", .0.detail())]
    Refused(KeyRefusal),
    #[error("the key's workspace lives in region {0}")]
    WrongRegion(Region),
    #[error("requests from this address are blocked by the workspace's security settings")]
    Blocked,
    #[error("too many failed authentications; retry after {retry_after:?}")]
    Throttled { retry_after: std::time::Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Limits of the verifier.
#[derive(Debug, Clone)]
pub struct VerifierConfig {
    pub region: Region,
    /// Failed authentications allowed per source IP, and per key id, in each window.
    pub max_failures: u32,
    pub failure_window: Duration,
    /// How long a wrong secret is remembered per key.
    pub failure_memory: Duration,
}

impl VerifierConfig {
    pub fn new(region: Region) -> Self {
        Self {
            region,
            max_failures: 20,
            failure_window: Duration::minutes(1),
            failure_memory: Duration::minutes(1),
        }
    }
}

/// Counters of one process, for the operator (`GET /healthz` shows them).
#[derive(Debug, Default)]
pub struct AuthStats {
    bcrypt_runs: AtomicU64,
    tracking_failures: AtomicU64,
    admin_failures: AtomicU64,
    throttled: AtomicU64,
}

/// A copy of the counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AuthCounts {
    /// Secrets checked with bcrypt.
    pub bcrypt_runs: u64,
    /// Refused tracking-API keys.
    pub tracking_failures: u64,
    /// Refused admin-API and SCIM tokens.
    pub admin_failures: u64,
    /// Requests answered 429 for too many failures.
    pub throttled: u64,
}

impl AuthStats {
    pub fn counts(&self) -> AuthCounts {
        AuthCounts {
            bcrypt_runs: self.bcrypt_runs.load(Ordering::Relaxed),
            tracking_failures: self.tracking_failures.load(Ordering::Relaxed),
            admin_failures: self.admin_failures.load(Ordering::Relaxed),
            throttled: self.throttled.load(Ordering::Relaxed),
        }
    }
}

#[derive(Clone)]
struct Verified {
    record: ApiKeyRecord,
    checked_at: OffsetDateTime,
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Source {
    Ip(IpAddr),
    Key(KeyId),
}

/// Verifies presented keys; see the module documentation.
pub struct KeyVerifier {
    config: VerifierConfig,
    clock: Arc<dyn Clock>,
    verified: TtlCache<[u8; 32], Verified>,
    wrong_secrets: TtlCache<(KeyId, [u8; 32]), ()>,
    failures: TtlCache<Source, u32>,
    workspaces: TtlCache<WorkspaceId, Arc<Workspace>>,
    /// Keys whose use was recorded less than [`USAGE_EVERY`] ago.
    used: TtlCache<KeyId, ()>,
    usage: OnceLock<Arc<dyn KeyUsage>>,
    /// The keys being checked with bcrypt now, one check each.
    checking: Gates,
    stats: AuthStats,
}

/// One gate per key fingerprint being checked: the first request through does the bcrypt
/// check, the others wait at the gate and then find its verdict remembered. A gate lives while
/// a request holds or waits at it.
#[derive(Default)]
struct Gates(std::sync::Mutex<HashMap<[u8; 32], Arc<tokio::sync::Mutex<()>>>>);

impl Gates {
    async fn enter(&self, fingerprint: [u8; 32]) -> Pass<'_> {
        let gate = self
            .0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(fingerprint)
            .or_default()
            .clone();
        let guard = gate.clone().lock_owned().await;
        Pass {
            gates: self,
            fingerprint,
            gate,
            guard: Some(guard),
        }
    }
}

/// Holds a key's gate; leaving it lets the next request through and drops the gate when no
/// request is left at it.
struct Pass<'a> {
    gates: &'a Gates,
    fingerprint: [u8; 32],
    gate: Arc<tokio::sync::Mutex<()>>,
    guard: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl Drop for Pass<'_> {
    fn drop(&mut self) {
        drop(self.guard.take());
        let mut gates = self.gates.0.lock().unwrap_or_else(|e| e.into_inner());
        // The map's and this pass's references only: nobody waits at it.
        if Arc::strong_count(&self.gate) == 2 {
            gates.remove(&self.fingerprint);
        }
    }
}

crate::debug_fields!(KeyVerifier: config);

const CAPACITY: usize = 10_000;

impl KeyVerifier {
    pub fn new(config: VerifierConfig, clock: Arc<dyn Clock>) -> Self {
        Self {
            verified: TtlCache::new(clock.clone(), VERIFIED_TTL, CAPACITY),
            wrong_secrets: TtlCache::new(clock.clone(), config.failure_memory, CAPACITY),
            failures: TtlCache::new(clock.clone(), config.failure_window, CAPACITY),
            workspaces: TtlCache::new(clock.clone(), REVALIDATE_EVERY, CAPACITY),
            used: TtlCache::new(clock.clone(), USAGE_EVERY, CAPACITY),
            usage: OnceLock::new(),
            checking: Gates::default(),
            stats: AuthStats::default(),
            config,
            clock,
        }
    }

    /// Where accepted keys' use is recorded; the first call wins (a verifier shared by both
    /// APIs of one process gets it from whichever is built with a writable store).
    pub fn record_usage_in(&self, usage: Arc<dyn KeyUsage>) {
        let _ = self.usage.set(usage);
    }

    pub fn region(&self) -> Region {
        self.config.region
    }

    pub fn stats(&self) -> AuthCounts {
        self.stats.counts()
    }

    /// Verifies `presented` for `audience`, from `ip` when known.
    pub async fn verify<C: ControlReader + ?Sized>(
        &self,
        control: &C,
        audience: Audience,
        presented: &str,
        ip: Option<IpAddr>,
    ) -> Result<ApiKeyRecord, AuthError> {
        let key = ApiKey::parse(presented).ok();
        let result = match &key {
            None => Err(AuthError::Refused(KeyRefusal::Unknown)),
            Some(key) => self.check(control, audience, key, ip).await,
        };
        match &result {
            Err(e) => self.failed(audience, key.as_ref().map(|k| &k.id), ip, e),
            Ok(record) => self.used(record).await,
        }
        result
    }

    /// Records the key's use, unless this process did less than [`USAGE_EVERY`] ago. The
    /// request never fails for it: a failed write is logged, and tried again a minute later.
    async fn used(&self, record: &ApiKeyRecord) {
        let Some(usage) = self.usage.get() else {
            return;
        };
        if self.used.get(&record.id).is_some() {
            return;
        }
        self.used.insert(record.id.clone(), ());
        let at = self.clock.now();
        if let Err(e) = usage
            .touch_api_key(&record.workspace_id, &record.id, at)
            .await
        {
            tracing::warn!(key_id = %record.id, error = %e, "recording the key's last use failed");
        }
    }

    async fn check<C: ControlReader + ?Sized>(
        &self,
        control: &C,
        audience: Audience,
        key: &ApiKey,
        ip: Option<IpAddr>,
    ) -> Result<ApiKeyRecord, AuthError> {
        if !audience.accepts(key.kind) {
            return Err(AuthError::Refused(KeyRefusal::WrongKind));
        }
        if key.region != self.config.region {
            return Err(AuthError::WrongRegion(key.region));
        }
        let now = self.clock.now();
        let fingerprint = key.fingerprint();
        if let Some(v) = self.verified.get(&fingerprint) {
            return self
                .remembered(control, audience, key, fingerprint, v, ip)
                .await;
        }
        // One bcrypt check per presented key at a time: requests that come with the key
        // while it is being checked wait for that verdict instead of each paying tens of
        // milliseconds of CPU (32 connections opening at once stalled ingest for about 2 s).
        let _pass = self.checking.enter(fingerprint).await;
        if let Some(v) = self.verified.get(&fingerprint) {
            return self
                .remembered(control, audience, key, fingerprint, v, ip)
                .await;
        }

        // Everything below may cost bcrypt: not for a source that keeps failing.
        if let Some(ip) = ip {
            self.throttle(&Source::Ip(ip))?;
        }
        let wrong = (key.id.clone(), secret_digest(key));
        if self.wrong_secrets.get(&wrong).is_some() {
            return Err(AuthError::Refused(KeyRefusal::Unknown));
        }
        self.throttle(&Source::Key(key.id.clone()))?;
        let record = control
            .api_key(&key.id, now)
            .await?
            .ok_or(AuthError::Refused(KeyRefusal::Unknown))?;
        if !same_key(audience, key, &record) {
            return Err(AuthError::Refused(KeyRefusal::Unknown));
        }
        let ws = self.workspace(control, &record.workspace_id, now).await?;
        if ip.is_some_and(|ip| ws.security.blocks(ip)) {
            return Err(AuthError::Blocked);
        }
        let verifier = record.verifier.clone();
        let check =
            ApiKey::parse(key.expose()).map_err(|_| AuthError::Refused(KeyRefusal::Unknown))?;
        self.stats.bcrypt_runs.fetch_add(1, Ordering::Relaxed);
        // bcrypt takes tens of milliseconds: keep it off the async workers.
        let matches = tokio::task::spawn_blocking(move || check.matches(&verifier))
            .await
            .unwrap_or(false);
        if !matches {
            self.wrong_secrets.insert(wrong, ());
            return Err(AuthError::Refused(KeyRefusal::Unknown));
        }
        self.verified.insert(
            fingerprint,
            Verified {
                record: record.clone(),
                checked_at: now,
            },
        );
        admit(audience, key, record, &ws, ip, now)
    }

    /// Admits a key whose bcrypt verdict is remembered, after reading its record again when
    /// the last read is [`REVALIDATE_EVERY`] old.
    async fn remembered<C: ControlReader + ?Sized>(
        &self,
        control: &C,
        audience: Audience,
        key: &ApiKey,
        fingerprint: [u8; 32],
        v: Verified,
        ip: Option<IpAddr>,
    ) -> Result<ApiKeyRecord, AuthError> {
        let now = self.clock.now();
        let record = if now - v.checked_at >= REVALIDATE_EVERY {
            self.revalidate(control, fingerprint, &v.record, now)
                .await?
        } else {
            v.record
        };
        let ws = self.workspace(control, &record.workspace_id, now).await?;
        admit(audience, key, record, &ws, ip, now)
    }

    /// Reads a remembered key's record again; the bcrypt verdict stands while its verifier
    /// is the same.
    async fn revalidate<C: ControlReader + ?Sized>(
        &self,
        control: &C,
        fingerprint: [u8; 32],
        cached: &ApiKeyRecord,
        now: OffsetDateTime,
    ) -> Result<ApiKeyRecord, AuthError> {
        let current = control.api_key(&cached.id, now).await?;
        match current {
            // nosemgrep: tl-secret-eq — two stored bcrypt verifiers (is the cache fresh?), no presented secret
            Some(record) if record.verifier == cached.verifier => {
                let fresh = record.clone();
                self.verified.update(fingerprint, |_| Verified {
                    record: fresh,
                    checked_at: now,
                });
                Ok(record)
            }
            _ => {
                self.verified.remove(&fingerprint);
                Err(AuthError::Refused(KeyRefusal::Unknown))
            }
        }
    }

    /// The workspace's settings, read again at most every [`REVALIDATE_EVERY`].
    async fn workspace<C: ControlReader + ?Sized>(
        &self,
        control: &C,
        id: &WorkspaceId,
        now: OffsetDateTime,
    ) -> Result<Arc<Workspace>, AuthError> {
        if let Some(ws) = self.workspaces.get(id) {
            return Ok(ws);
        }
        let ws = Arc::new(
            control
                .workspace(id, now)
                .await?
                .ok_or(AuthError::Refused(KeyRefusal::Unknown))?,
        );
        self.workspaces.insert(id.clone(), ws.clone());
        Ok(ws)
    }

    fn throttle(&self, source: &Source) -> Result<(), AuthError> {
        let Some((count, since)) = self.failures.get_with_time(source) else {
            return Ok(());
        };
        if count < self.config.max_failures {
            return Ok(());
        }
        self.stats.throttled.fetch_add(1, Ordering::Relaxed);
        let left = (since + self.config.failure_window) - self.clock.now();
        let secs = left.whole_seconds().max(1) as u64;
        Err(AuthError::Throttled {
            retry_after: std::time::Duration::from_secs(secs),
        })
    }

    fn failed(&self, audience: Audience, key: Option<&KeyId>, ip: Option<IpAddr>, e: &AuthError) {
        let AuthError::Refused(reason) = e else {
            if let AuthError::Throttled { .. } | AuthError::Blocked = e {
                // The address of a refused authentication is the security signal (blocklist,
                // abuse reports); it is logged for failures only.
                // nosemgrep: tl-log-pii — a failed authentication's source address, see above
                tracing::info!(
                    audience = audience.as_str(),
                    key_id = key.map(KeyId::as_str),
                    ip = ip.map(|ip| ip.to_string()),
                    reason = %e,
                    "API key authentication refused"
                );
            }
            return;
        };
        if let Some(ip) = ip {
            self.failures.update(Source::Ip(ip), |n| n.unwrap_or(0) + 1);
        }
        if let Some(id) = key {
            self.failures
                .update(Source::Key(id.clone()), |n| n.unwrap_or(0) + 1);
        }
        let counter = match audience {
            Audience::Tracking => &self.stats.tracking_failures,
            Audience::Admin | Audience::Scim => &self.stats.admin_failures,
        };
        let total = counter.fetch_add(1, Ordering::Relaxed) + 1;
        let (key_id, ip) = (key.map(KeyId::as_str), ip.map(|ip| ip.to_string()));
        match audience {
            // nosemgrep: tl-log-pii — as above: failed authentications only
            Audience::Admin | Audience::Scim => tracing::warn!(
                audience = audience.as_str(),
                key_id,
                ip,
                reason = reason.detail(),
                failures_total = total,
                "API key authentication failed"
            ),
            // nosemgrep: tl-log-pii — as above: failed authentications only
            Audience::Tracking => tracing::debug!(
                audience = "tracking",
                key_id,
                ip,
                reason = reason.detail(),
                failures_total = total,
                "API key authentication failed"
            ),
        }
    }
}

/// The stored record is the presented key: same kind, prefix (kind, region, id), and a kind
/// this audience takes.
fn same_key(audience: Audience, key: &ApiKey, record: &ApiKeyRecord) -> bool {
    record.kind == key.kind
        && audience.accepts(record.kind)
        && record.id == key.id
        && record.prefix == key.prefix()
}

/// The checks every request passes, verified now or remembered.
fn admit(
    audience: Audience,
    key: &ApiKey,
    record: ApiKeyRecord,
    ws: &Workspace,
    ip: Option<IpAddr>,
    now: OffsetDateTime,
) -> Result<ApiKeyRecord, AuthError> {
    if !same_key(audience, key, &record) || ws.region != key.region || ws.id != record.workspace_id
    {
        return Err(AuthError::Refused(KeyRefusal::Unknown));
    }
    if ip.is_some_and(|ip| ws.security.blocks(ip)) {
        return Err(AuthError::Blocked);
    }
    if let Some(refusal) = record.refusal(now) {
        return Err(AuthError::Refused(refusal));
    }
    // Closure revokes every key, the caller's last; a key of a closed workspace that escaped
    // (an attempt that failed in between) is refused all the same.
    if ws.is_closed() {
        return Err(AuthError::Refused(KeyRefusal::Revoked));
    }
    Ok(record)
}

/// What a wrong secret is remembered by: SHA-256 of the secret part, never the secret.
fn secret_digest(key: &ApiKey) -> [u8; 32] {
    Sha256::digest(key.secret().as_bytes()).into()
}

impl Invalidate for KeyVerifier {
    fn invalidate(&self, change: &Change) {
        let stale = OffsetDateTime::UNIX_EPOCH;
        match change {
            Change::Key(id) => {
                self.verified.modify_all(|_, v| {
                    if &v.record.id == id {
                        v.checked_at = stale;
                    }
                });
                self.wrong_secrets.retain(|(k, _), _| k != id);
            }
            Change::Workspace(ws) => {
                self.workspaces.remove(ws);
                self.verified.modify_all(|_, v| {
                    if &v.record.workspace_id == ws {
                        v.checked_at = stale;
                    }
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use async_trait::async_trait;
    use time::macros::datetime;

    use super::*;
    use crate::clock::FixedClock;
    use crate::consent::ConsentPolicy;
    use crate::crypto::WrappedKey;
    use crate::destination::{Destination, DestinationId};
    use crate::workspace::{KeyRef, Retention};

    const T0: OffsetDateTime = datetime!(2026-03-01 12:00:00 UTC);
    const SECRET: &str = "s3cr3tS3cr3tS3cr3tS3cr3tS3cr3t00"; // pragma: allowlist secret

    /// One workspace with one ingest key.
    struct OneKey {
        ws: Workspace,
        key: ApiKeyRecord,
    }

    #[async_trait]
    impl ControlReader for OneKey {
        async fn workspace(
            &self,
            id: &WorkspaceId,
            _: OffsetDateTime,
        ) -> Result<Option<Workspace>, StoreError> {
            Ok((id == &self.ws.id).then(|| self.ws.clone()))
        }
        async fn api_key(
            &self,
            id: &KeyId,
            _: OffsetDateTime,
        ) -> Result<Option<ApiKeyRecord>, StoreError> {
            Ok((id == &self.key.id).then(|| self.key.clone()))
        }
        async fn destinations(&self, _: &WorkspaceId) -> Result<Vec<Destination>, StoreError> {
            Ok(Vec::new())
        }
        async fn destination(
            &self,
            _: &WorkspaceId,
            _: &DestinationId,
        ) -> Result<Option<Destination>, StoreError> {
            Ok(None)
        }
    }

    /// Records each write; fails each one when `fail`.
    #[derive(Default)]
    struct Writes {
        at: Mutex<Vec<OffsetDateTime>>,
        fail: bool,
    }

    #[async_trait]
    impl KeyUsage for Writes {
        async fn touch_api_key(
            &self,
            _: &WorkspaceId,
            _: &KeyId,
            at: OffsetDateTime,
        ) -> Result<(), StoreError> {
            self.at.lock().unwrap().push(at);
            if self.fail {
                return Err(StoreError::Conflict("scripted failure"));
            }
            Ok(())
        }
    }

    fn setup(fail: bool) -> (OneKey, ApiKey, Arc<FixedClock>, Arc<Writes>, KeyVerifier) {
        let ws = Workspace {
            id: WorkspaceId::new(Region::Us, "0123456789abcdef0123456789abcdef"),
            name: "Test".into(),
            region: Region::Us,
            created_at: T0,
            retention: Retention::default(),
            consent: ConsentPolicy::default(),
            key_ref: KeyRef::Platform,
            data_key: WrappedKey(vec![1]),
            security: Default::default(),
            closed_at: None,
        };
        let presented = ApiKey::from_parts(KeyKind::Ingest, Region::Us, "0123456789abcdef", SECRET);
        let key = ApiKeyRecord {
            id: presented.id.clone(),
            workspace_id: ws.id.clone(),
            kind: KeyKind::Ingest,
            role: None,
            user_id: None,
            name: "website".into(),
            prefix: presented.prefix(),
            verifier: presented.verifier(4).unwrap(),
            created_at: T0,
            expires_at: T0 + Duration::days(90),
            revoked_at: None,
            last_used_at: None,
            expiry_warnings_sent: Vec::new(),
            browser: false,
        };
        let clock = Arc::new(FixedClock::new(T0));
        let writes = Arc::new(Writes {
            fail,
            ..Default::default()
        });
        let verifier = KeyVerifier::new(VerifierConfig::new(Region::Us), clock.clone());
        verifier.record_usage_in(writes.clone());
        (OneKey { ws, key }, presented, clock, writes, verifier)
    }

    /// `key` with another secret: its id and prefix, so it reaches the bcrypt check.
    fn with_a_wrong_secret(key: &ApiKey) -> ApiKey {
        ApiKey::from_parts(
            KeyKind::Ingest,
            Region::Us,
            key.id.as_str(),
            "wrongWrongWrongWrongWrongWrong00",
        )
    }

    #[tokio::test]
    async fn a_keys_use_is_written_once_a_minute_not_once_a_request() {
        let (control, key, clock, writes, verifier) = setup(false);

        for _ in 0..5 {
            verifier
                .verify(&control, Audience::Tracking, key.expose(), None)
                .await
                .unwrap();
            clock.advance(Duration::seconds(11));
        }
        assert_eq!(
            *writes.at.lock().unwrap(),
            vec![T0],
            "five requests in 55 s"
        );

        clock.advance(Duration::seconds(5));
        verifier
            .verify(&control, Audience::Tracking, key.expose(), None)
            .await
            .unwrap();
        assert_eq!(
            *writes.at.lock().unwrap(),
            vec![T0, T0 + Duration::seconds(60)]
        );
    }

    #[tokio::test]
    async fn a_failed_usage_write_never_fails_the_request_nor_repeats_per_request() {
        let (control, key, clock, writes, verifier) = setup(true);

        for _ in 0..3 {
            let accepted = verifier
                .verify(&control, Audience::Tracking, key.expose(), None)
                .await;
            assert!(accepted.is_ok(), "{accepted:?}");
            clock.advance(Duration::seconds(1));
        }
        assert_eq!(writes.at.lock().unwrap().len(), 1);
    }

    #[tokio::test]
    async fn a_refused_key_is_not_recorded_as_used() {
        let (control, key, _, writes, verifier) = setup(false);
        let wrong = with_a_wrong_secret(&key);
        let refused = verifier
            .verify(&control, Audience::Tracking, wrong.expose(), None)
            .await;
        assert!(refused.is_err());
        assert!(writes.at.lock().unwrap().is_empty());
    }

    #[tokio::test]
    async fn requests_arriving_with_a_key_while_it_is_checked_share_one_bcrypt_check() {
        let (control, key, _, _, verifier) = setup(false);
        let wrong = with_a_wrong_secret(&key);
        let (right, wrong) = (key.expose(), wrong.expose());
        let verify = |k| verifier.verify(&control, Audience::Tracking, k, None);

        let (a, b, c, d) = tokio::join!(verify(right), verify(right), verify(right), verify(right));
        assert!([a, b, c, d].iter().all(Result::is_ok));
        assert_eq!(
            verifier.stats().bcrypt_runs,
            1,
            "one check for four requests"
        );

        let (a, b, c) = tokio::join!(verify(wrong), verify(wrong), verify(wrong));
        assert!([a, b, c].iter().all(Result::is_err));
        assert_eq!(
            verifier.stats().bcrypt_runs,
            2,
            "one check of the wrong secret"
        );
        assert!(
            verifier.checking.0.lock().unwrap().is_empty(),
            "no gate is left behind"
        );
    }

    #[test]
    fn each_audience_takes_only_its_own_kinds_and_scim_tokens_only_scim() {
        use KeyKind::*;
        let takes = |a: Audience| {
            [Ingest, Pat, Svc, Scim]
                .into_iter()
                .filter(|k| a.accepts(*k))
                .collect::<Vec<_>>()
        };
        assert_eq!(takes(Audience::Tracking), vec![Ingest]);
        assert_eq!(takes(Audience::Admin), vec![Pat, Svc]);
        assert_eq!(takes(Audience::Scim), vec![Scim]);
    }

    #[tokio::test]
    async fn a_valid_key_of_another_kind_is_refused_by_the_scim_audience_before_bcrypt() {
        let (control, key, _, _, verifier) = setup(false);
        let refused = verifier
            .verify(&control, Audience::Scim, key.expose(), None)
            .await;
        assert!(matches!(
            refused,
            Err(AuthError::Refused(KeyRefusal::WrongKind))
        ));
        assert_eq!(verifier.stats().bcrypt_runs, 0);
    }
}
