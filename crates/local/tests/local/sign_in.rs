//! Console sign-in and sessions through the control plane's use cases, on SQLite with a
//! fixed clock: what an attacker would try first.

use std::net::IpAddr;
use std::sync::Arc;

use async_trait::async_trait;
use time::Duration;
use tracklayer_core::admin::{AdminError, AdminPorts, AdminService, Principal, SignedIn};
use tracklayer_core::audit::AuditFilter;
use tracklayer_core::clock::{Clock, FixedClock, SystemIds};
use tracklayer_core::keys::Role;
use tracklayer_core::ports::{EgressError, SessionStore, UrlGuard};
use tracklayer_core::services::CommonPorts;
use tracklayer_core::sessions::{
    SessionToken, ACCOUNT_FAILURE_LIMIT, IP_FAILURE_LIMIT, RESET_REQUEST_FLOOR,
    SIGN_IN_REFUSAL_FLOOR,
};
use tracklayer_core::testkit::sessions::RecordingMailer;
use tracklayer_core::testkit::T0;
use tracklayer_core::workspace::{Region, User, Workspace};
use tracklayer_local::{
    Db, SqliteAuditLog, SqliteControlStore, SqliteDeliveryLog, SqliteDeliveryQueue, SqliteDsrStore,
    SqliteEventStore, SqliteSessionStore,
};

use super::keyring_in;

const PASSWORD: &str = "violet-harbor-42-lantern";

struct AllowAll;

#[async_trait]
impl UrlGuard for AllowAll {
    async fn check(&self, _url: &str) -> Result<(), EgressError> {
        Ok(())
    }
}

/// A workspace on SQLite, its operator, and what the console mails.
struct Console {
    _dir: tempfile::TempDir,
    db: Db,
    clock: Arc<FixedClock>,
    mail: Arc<RecordingMailer>,
    sessions: Arc<SqliteSessionStore>,
    admin: AdminService,
    ws: Workspace,
    operator: Principal,
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn home() -> IpAddr {
    ip("198.51.100.7")
}

impl Console {
    async fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        let keyring = Arc::new(keyring_in(dir.path(), "c"));
        let db = Db::in_memory().unwrap();
        let clock = Arc::new(FixedClock::new(T0));
        let control = Arc::new(SqliteControlStore::new(db.clone()));
        let mail = Arc::new(RecordingMailer::default());
        let sessions = Arc::new(SqliteSessionStore::new(db.clone()));
        let boot = tracklayer_core::control_plane::Control {
            store: control.as_ref(),
            keyring: keyring.as_ref(),
            clock: clock.as_ref(),
            ids: &SystemIds,
        }
        .bootstrap(Region::Us, "Console")
        .await
        .unwrap();
        let admin = AdminService::new(
            AdminPorts {
                common: CommonPorts {
                    control,
                    audit: Arc::new(SqliteAuditLog::new(db.clone(), keyring.clone())),
                    keyring,
                    delivery_log: Arc::new(SqliteDeliveryLog::new(db.clone())),
                    queue: Arc::new(SqliteDeliveryQueue::new(
                        db.clone(),
                        clock.clone(),
                        Arc::new(SystemIds),
                        8,
                    )),
                    dsr: Arc::new(SqliteDsrStore::new(db.clone())),
                    mailer: mail.clone(),
                    clock: clock.clone(),
                    ids: Arc::new(SystemIds),
                },
                events: Arc::new(SqliteEventStore::new(db.clone())),
                url_guard: Arc::new(AllowAll),
                sessions: sessions.clone(),
                stats: Arc::new(tracklayer_local::SqliteStats::new(db.clone())),
            },
            Region::Us,
        )
        .with_public_url("https://console.example.com/");
        let operator = Principal::operator(&boot.workspace.id);
        Self {
            _dir: dir,
            db,
            clock,
            mail,
            sessions,
            admin,
            ws: boot.workspace,
            operator,
        }
    }

    /// Invites `email` as `role`; returns the user and the mailed invitation token.
    async fn invite(&self, email: &str, role: Role) -> (User, String) {
        let user = self
            .admin
            .invite_user(&self.operator, email, role)
            .await
            .unwrap();
        let token = self
            .mail
            .last_token("/invite/")
            .expect("an invitation mail");
        (user, token)
    }

    /// A user who accepted their invitation with [`PASSWORD`], signed in.
    async fn member(&self, email: &str, role: Role) -> (User, SignedIn) {
        let (user, token) = self.invite(email, role).await;
        let signed = self.accept_invitation(&token, PASSWORD).await.unwrap();
        (user, signed)
    }

    /// Signs `email` in with `password` from the [`home`] address.
    async fn sign_in(&self, email: &str, password: &str) -> Result<SignedIn, AdminError> {
        self.admin.sign_in(email, password, home()).await
    }

    /// Accepts the invitation `token` with `password` from the [`home`] address.
    async fn accept_invitation(&self, token: &str, password: &str) -> Result<SignedIn, AdminError> {
        self.admin.accept_invitation(token, password, home()).await
    }

    /// Asks for a password reset link for `email` from the [`home`] address.
    async fn request_password_reset(&self, email: &str) {
        self.admin.request_password_reset(email, home()).await
    }

    /// Sets `password` through the reset link `token` from the [`home`] address.
    async fn reset_password(&self, token: &str, password: &str) -> Result<SignedIn, AdminError> {
        self.admin.reset_password(token, password, home()).await
    }

    /// Redeems the sign-in link `token` from the [`home`] address.
    async fn redeem_sign_in_link(&self, token: &str) -> Result<SignedIn, AdminError> {
        self.admin.redeem_sign_in_link(token, home()).await
    }

    async fn audit_actions(&self) -> Vec<(String, String, serde_json::Value)> {
        let filter = AuditFilter {
            actor: None,
            action: None,
            since: None,
            until: None,
            after: None,
            limit: 1000,
        };
        self.admin
            .audit_log(&self.operator, filter)
            .await
            .unwrap()
            .into_iter()
            .map(|e| (e.action, e.target, e.summary))
            .collect()
    }

    fn advance(&self, by: Duration) {
        self.clock.advance(by);
    }
}

fn ended(r: Result<impl std::fmt::Debug, AdminError>) -> bool {
    matches!(r, Err(AdminError::SessionEnded))
}

/// The link was refused: used, expired or never made.
fn link_refused(r: Result<impl std::fmt::Debug, AdminError>) -> bool {
    matches!(r, Err(AdminError::LinkInvalid))
}

#[tokio::test]
async fn an_invitation_mails_a_one_time_link_under_the_public_url() {
    let c = Console::new().await;
    let (user, token) = c.invite("ada@example.com", Role::Editor).await;
    let mail = c.mail.sent().pop().unwrap();
    assert_eq!(mail.to, vec!["ada@example.com".to_owned()]);
    assert!(mail
        .text
        .contains(&format!("https://console.example.com/invite/{token}")));
    let signed = c.accept_invitation(&token, PASSWORD).await.unwrap();
    assert_eq!(signed.session.user_id, user.id);
    let console = c.admin.console_session(&signed.token).await.unwrap();
    assert_eq!(console.principal.actor, format!("user:{}", user.id));
    assert_eq!(console.principal.role, Role::Editor);
    assert_eq!(console.csrf, signed.csrf);
    assert!(link_refused(c.accept_invitation(&token, PASSWORD).await));
}

#[tokio::test]
async fn an_invitation_link_expires_after_7_days() {
    let c = Console::new().await;
    let (_, early) = c.invite("early@example.com", Role::Viewer).await;
    let (_, late) = c.invite("late@example.com", Role::Viewer).await;
    c.advance(Duration::days(7) - Duration::seconds(1));
    assert!(c.accept_invitation(&early, PASSWORD).await.is_ok());
    c.advance(Duration::seconds(1));
    assert!(link_refused(c.accept_invitation(&late, PASSWORD).await));
}

#[tokio::test]
async fn a_password_that_breaks_a_rule_is_refused_naming_password_and_the_link_stays_usable() {
    let c = Console::new().await;
    let (_, token) = c.invite("ada@example.com", Role::Viewer).await;
    for (weak, rule) in [("short-pw", "12 characters"), ("qwerty123456", "common")] {
        match c.accept_invitation(&token, weak).await {
            Err(AdminError::Invalid { field, detail }) => {
                assert_eq!(field, "password");
                assert!(detail.contains(rule), "{detail}");
            }
            other => panic!("{other:?}"),
        }
    }
    assert!(c.accept_invitation(&token, PASSWORD).await.is_ok());
}

#[tokio::test]
async fn a_wrong_password_and_an_unknown_account_get_the_same_refusal_after_the_same_work() {
    let c = Console::new().await;
    c.member("ada@example.com", Role::Admin).await;
    let mut known = std::time::Duration::MAX;
    let mut unknown = std::time::Duration::MAX;
    // The fastest of 4 rounds each (one fewer wrong password than locks the account), so that
    // a round slowed by the machine's other work does not decide.
    const ROUNDS: u32 = 4;
    const { assert!(ROUNDS < ACCOUNT_FAILURE_LIMIT) };
    for n in 0..ROUNDS {
        let started = std::time::Instant::now();
        let wrong = c.sign_in("ada@example.com", "not-the-password-1").await;
        known = known.min(started.elapsed());
        let started = std::time::Instant::now();
        let nobody = c.sign_in(&format!("nobody{n}@example.com"), PASSWORD).await;
        unknown = unknown.min(started.elapsed());
        let (wrong, nobody) = (wrong.unwrap_err(), nobody.unwrap_err());
        assert!(matches!(wrong, AdminError::SignInRefused));
        assert!(matches!(nobody, AdminError::SignInRefused));
        assert_eq!(wrong.to_string(), nobody.to_string());
    }
    // Both pay one argon2id verification (tens of milliseconds); an unknown account is not
    // answered early, and neither is answered before the floor that hides what differs (the
    // wrong password's audit entry).
    assert!(
        unknown * 2 >= known,
        "unknown {unknown:?} vs known {known:?}"
    );
    assert!(
        known >= SIGN_IN_REFUSAL_FLOOR && unknown >= SIGN_IN_REFUSAL_FLOOR,
        "unknown {unknown:?} vs known {known:?}"
    );
    let ok = c.sign_in("ADA@example.com ", PASSWORD).await;
    assert!(ok.is_ok(), "email case and spacing do not matter");
}

#[tokio::test]
async fn after_5_failures_an_account_is_refused_until_the_window_ends_even_with_its_password() {
    let c = Console::new().await;
    c.member("ada@example.com", Role::Viewer).await;
    assert_eq!(ACCOUNT_FAILURE_LIMIT, 5);
    for _ in 0..ACCOUNT_FAILURE_LIMIT {
        let r = c.sign_in("ada@example.com", "wrong-password-xx").await;
        assert!(matches!(r, Err(AdminError::SignInRefused)));
    }
    let other_address = ip("203.0.113.9");
    match c
        .admin
        .sign_in("ada@example.com", PASSWORD, other_address)
        .await
    {
        Err(AdminError::Throttled { retry_after }) => {
            assert!(retry_after <= std::time::Duration::from_secs(15 * 60))
        }
        other => panic!("{other:?}"),
    }
    // An unknown account is throttled alike: the answer reveals nothing.
    for _ in 0..ACCOUNT_FAILURE_LIMIT {
        let _ = c.sign_in("nobody@example.com", "wrong-password-xx").await;
    }
    assert!(matches!(
        c.admin
            .sign_in("nobody@example.com", PASSWORD, other_address)
            .await,
        Err(AdminError::Throttled { .. })
    ));
    c.advance(Duration::minutes(15));
    assert!(c.sign_in("ada@example.com", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn concurrent_guesses_at_one_account_get_no_more_than_5_password_checks() {
    let c = Console::new().await;
    c.member("ada@example.com", Role::Viewer).await;
    let guesses = (0..12).map(|n| {
        let password = format!("wrong-password-{n:02}");
        let admin = &c.admin;
        async move { admin.sign_in("ada@example.com", &password, home()).await }
    });
    let results = tracklayer_core::testkit::sessions::join_all(guesses).await;
    let checked = results
        .iter()
        .filter(|r| matches!(r, Err(AdminError::SignInRefused)))
        .count();
    let throttled = results
        .iter()
        .filter(|r| matches!(r, Err(AdminError::Throttled { .. })))
        .count();
    assert_eq!((checked, throttled), (5, 7));
}

#[tokio::test]
async fn after_20_failures_from_one_address_it_is_refused_for_every_account() {
    let c = Console::new().await;
    c.member("ada@example.com", Role::Viewer).await;
    let attacker = ip("2001:db8:66::1");
    assert_eq!(IP_FAILURE_LIMIT, 20);
    for n in 0..IP_FAILURE_LIMIT {
        let email = format!("guess{n}@example.com");
        let r = c.admin.sign_in(&email, "wrong-password-xx", attacker).await;
        assert!(matches!(r, Err(AdminError::SignInRefused)), "{n}");
    }
    // Another address of the same /64 is the same source.
    let neighbour = ip("2001:db8:66::2");
    assert!(matches!(
        c.admin
            .sign_in("ada@example.com", PASSWORD, neighbour)
            .await,
        Err(AdminError::Throttled { .. })
    ));
    assert!(c.sign_in("ada@example.com", PASSWORD).await.is_ok());
}

#[tokio::test]
async fn a_failed_sign_in_to_a_known_account_is_audited_without_the_address() {
    let c = Console::new().await;
    let (ada, _) = c.member("ada@example.com", Role::Viewer).await;
    let _ = c.sign_in("ada@example.com", "wrong-password-xx").await;
    let entries = c.audit_actions().await;
    let failed: Vec<_> = entries
        .iter()
        .filter(|(action, _, _)| action == "session.sign_in_failed")
        .collect();
    assert_eq!(failed.len(), 1);
    assert_eq!(failed[0].1, ada.id.as_str());
    let summary = failed[0].2.to_string();
    assert!(summary.contains("198.51.100.0/24"), "{summary}");
    assert!(
        !summary.contains("198.51.100.7") && !summary.contains("ada@"),
        "{summary}"
    );
    assert!(entries.iter().any(|(a, _, _)| a == "session.sign_in"));
}

#[tokio::test]
async fn a_role_change_ends_the_users_sessions_at_once() {
    let c = Console::new().await;
    let (ada, signed) = c.member("ada@example.com", Role::Admin).await;
    c.admin.console_session(&signed.token).await.unwrap();
    c.admin
        .set_role(&c.operator, &ada.id, Role::Viewer)
        .await
        .unwrap();
    assert!(ended(c.admin.console_session(&signed.token).await));
    let again = c.sign_in("ada@example.com", PASSWORD).await.unwrap();
    let console = c.admin.console_session(&again.token).await.unwrap();
    assert_eq!(console.principal.role, Role::Viewer);
}

#[tokio::test]
async fn removing_a_user_ends_their_sessions_and_their_password() {
    let c = Console::new().await;
    let (ada, signed) = c.member("ada@example.com", Role::Editor).await;
    c.admin.remove_user(&c.operator, &ada.id).await.unwrap();
    assert!(ended(c.admin.console_session(&signed.token).await));
    assert!(matches!(
        c.sign_in("ada@example.com", PASSWORD).await,
        Err(AdminError::SignInRefused)
    ));
}

#[tokio::test]
async fn a_reset_link_is_mailed_only_to_a_known_account_works_once_and_for_an_hour() {
    let c = Console::new().await;
    let (_, before) = c.member("ada@example.com", Role::Viewer).await;
    let mails = c.mail.sent().len();
    let started = std::time::Instant::now();
    c.request_password_reset("nobody@example.com").await;
    let unknown = started.elapsed();
    assert_eq!(
        c.mail.sent().len(),
        mails,
        "nothing is mailed for an unknown account"
    );
    let started = std::time::Instant::now();
    c.request_password_reset("ada@example.com").await;
    let known = started.elapsed();
    let token = c.mail.last_token("/reset/").expect("a reset mail");
    // The answer leaves no sooner than the floor either way: a link written and a mail sent
    // do not tell that the account exists.
    assert!(
        unknown >= RESET_REQUEST_FLOOR && known >= RESET_REQUEST_FLOOR,
        "unknown {unknown:?} vs known {known:?}"
    );
    let new_password = "copper-meadow-17-kettle";
    let after = c.reset_password(&token, new_password).await.unwrap();
    assert!(
        ended(c.admin.console_session(&before.token).await),
        "a password change ends sessions"
    );
    assert!(c.admin.console_session(&after.token).await.is_ok());
    assert!(link_refused(c.reset_password(&token, new_password).await));
    assert!(c.sign_in("ada@example.com", PASSWORD).await.is_err());
    assert!(c.sign_in("ada@example.com", new_password).await.is_ok());

    c.request_password_reset("ada@example.com").await;
    let late = c.mail.last_token("/reset/").unwrap();
    c.advance(Duration::hours(1));
    assert!(link_refused(c.reset_password(&late, PASSWORD).await));
}

#[tokio::test]
async fn a_session_ends_12_hours_after_it_was_last_seen_and_7_days_after_it_began() {
    let c = Console::new().await;
    let (_, idle) = c.member("idle@example.com", Role::Viewer).await;
    let (_, busy) = c.member("busy@example.com", Role::Viewer).await;
    c.advance(Duration::hours(11));
    c.admin.console_session(&busy.token).await.unwrap();
    c.advance(Duration::hours(1));
    assert!(ended(c.admin.console_session(&idle.token).await));
    c.admin.console_session(&busy.token).await.unwrap();
    // Seen every 11 hours, it still ends 7 days after it began.
    let mut elapsed = Duration::hours(12);
    while elapsed + Duration::hours(11) < Duration::days(7) {
        c.advance(Duration::hours(11));
        elapsed += Duration::hours(11);
        c.admin.console_session(&busy.token).await.unwrap();
    }
    c.advance(Duration::days(7) - elapsed);
    assert!(ended(c.admin.console_session(&busy.token).await));
}

#[tokio::test]
async fn last_seen_is_written_at_most_once_a_minute() {
    let c = Console::new().await;
    let (ada, signed) = c.member("ada@example.com", Role::Viewer).await;
    let last_seen = || async {
        let list = c
            .sessions
            .sessions_of(&c.ws.id, &ada.id, c.clock.now())
            .await
            .unwrap();
        list[0].last_seen_at
    };
    c.advance(Duration::seconds(59));
    c.admin.console_session(&signed.token).await.unwrap();
    assert_eq!(last_seen().await, T0);
    c.advance(Duration::seconds(1));
    c.admin.console_session(&signed.token).await.unwrap();
    assert_eq!(last_seen().await, T0 + Duration::minutes(1));
}

#[tokio::test]
async fn a_user_lists_and_ends_their_own_sessions_and_only_an_admin_those_of_others() {
    let c = Console::new().await;
    let (ada, first) = c.member("ada@example.com", Role::Viewer).await;
    let second = c.sign_in("ada@example.com", PASSWORD).await.unwrap();
    let (bob, bobs) = c.member("bob@example.com", Role::Editor).await;
    let ada_p = c
        .admin
        .console_session(&first.token)
        .await
        .unwrap()
        .principal;
    let bob_p = c
        .admin
        .console_session(&bobs.token)
        .await
        .unwrap()
        .principal;
    let listed = c.admin.sessions(&ada_p, &ada.id).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(matches!(
        c.admin.sessions(&ada_p, &bob.id).await,
        Err(AdminError::Forbidden { .. })
    ));
    assert!(matches!(
        c.admin.revoke_session(&bob_p, &first.session.id).await,
        Err(AdminError::Forbidden { .. })
    ));
    c.admin
        .revoke_session(&ada_p, &second.session.id)
        .await
        .unwrap();
    assert!(ended(c.admin.console_session(&second.token).await));
    assert!(c.admin.console_session(&first.token).await.is_ok());
    assert_eq!(
        c.admin.sessions(&c.operator, &bob.id).await.unwrap().len(),
        1
    );
    c.admin
        .revoke_session(&c.operator, &bobs.session.id)
        .await
        .unwrap();
    assert!(ended(c.admin.console_session(&bobs.token).await));
    assert!(c
        .audit_actions()
        .await
        .iter()
        .any(|(a, _, _)| a == "session.revoke"));
}

#[tokio::test]
async fn signing_out_ends_the_session_and_a_made_up_token_opens_nothing() {
    let c = Console::new().await;
    let (_, signed) = c.member("ada@example.com", Role::Viewer).await;
    c.admin.sign_out(&signed.token).await.unwrap();
    assert!(ended(c.admin.console_session(&signed.token).await));
    c.admin.sign_out(&signed.token).await.unwrap();
    let made_up = SessionToken::generate(&SystemIds);
    assert!(ended(c.admin.console_session(&made_up).await));
}

#[tokio::test]
async fn a_sign_in_link_is_made_only_for_the_operator_and_works_once_for_an_hour() {
    let c = Console::new().await;
    let link = c.admin.owner_sign_in_link(&c.operator).await.unwrap();
    assert!(link
        .url
        .starts_with("https://console.example.com/sign-in/link/"));
    assert_eq!(link.expires_at, T0 + Duration::hours(1));
    let token = link.url.rsplit('/').next().unwrap();
    let signed = c.redeem_sign_in_link(token).await.unwrap();
    let owner = c.admin.console_session(&signed.token).await.unwrap();
    assert_eq!(owner.principal.actor, "user:usr_owner");
    assert_eq!(owner.principal.role, Role::Admin);
    assert!(link_refused(c.redeem_sign_in_link(token).await));
    // An admin signed in to the console cannot mint links to sign in as someone.
    assert!(matches!(
        c.admin.owner_sign_in_link(&owner.principal).await,
        Err(AdminError::Forbidden { .. })
    ));
    let late = c.admin.owner_sign_in_link(&c.operator).await.unwrap();
    c.advance(Duration::hours(1));
    let token = late.url.rsplit('/').next().unwrap();
    assert!(link_refused(c.redeem_sign_in_link(token).await));
}

#[tokio::test]
async fn the_store_keeps_no_token_no_link_no_password_and_no_address() {
    let c = Console::new().await;
    let (_, token) = c.invite("ada@example.com", Role::Viewer).await;
    let signed = c.accept_invitation(&token, PASSWORD).await.unwrap();
    c.request_password_reset("ada@example.com").await;
    let reset = c.mail.last_token("/reset/").unwrap();
    let dump: String =
        c.db.call("dump", |conn| {
            let mut out = String::new();
            for table in ["console_sessions", "console_credentials", "console_links"] {
                let mut stmt = conn.prepare(&format!("SELECT * FROM {table}")).unwrap();
                let n = stmt.column_count();
                let rows = stmt
                    .query_map([], |r| {
                        Ok((0..n)
                            .map(|i| match r.get_ref(i).unwrap() {
                                rusqlite::types::ValueRef::Text(t) => {
                                    String::from_utf8_lossy(t).into_owned()
                                }
                                other => format!("{other:?}"),
                            })
                            .collect::<Vec<_>>()
                            .join("|"))
                    })
                    .unwrap();
                for row in rows {
                    out.push_str(&row.unwrap());
                    out.push('\n');
                }
            }
            Ok(out)
        })
        .await
        .unwrap();
    for secret in [
        signed.token.as_str(),
        &token,
        &reset,
        PASSWORD,
        "198.51.100.7",
        "ada@",
    ] {
        assert!(!dump.contains(secret), "the store holds {secret:?}");
    }
    assert!(dump.contains("$argon2id$"));
}

#[path = "sso_discovery.rs"]
mod sso_discovery;
#[path = "sso_enforcement.rs"]
mod sso_enforcement;
