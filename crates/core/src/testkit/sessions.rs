use super::*;
use crate::clock::SystemIds;
use crate::password::PasswordVerifier;
use crate::ports::SessionStore;
use crate::sessions::{
    Credential, LinkKind, LinkRecord, LoginKey, Session, SessionId, SessionToken, StoredSession,
    TokenHash, SESSION_ABSOLUTE, SESSION_IDLE,
};
use crate::user_id::UserId;

fn user_id() -> UserId {
    UserId::parse(&format!("usr_{}", unique())).expect("user id")
}

/// A new session of `user` in `ws`, begun at `at`, with a fresh token (returned with it).
pub fn stored_session(
    ws: &WorkspaceId,
    user: &UserId,
    at: OffsetDateTime,
) -> (SessionToken, StoredSession) {
    let token = SessionToken::generate(&SystemIds);
    let session = Session {
        id: SessionId::generate(&SystemIds),
        user_id: user.clone(),
        workspace_id: ws.clone(),
        created_at: at,
        last_seen_at: at,
        expires_at: at + SESSION_ABSOLUTE,
        source_ip: "203.0.113.0/24".into(),
        user_agent: Some("Firefox on Linux".into()),
        sso: false,
    };
    let stored = StoredSession {
        token_hash: token.hash(),
        session,
    };
    (token, stored)
}

fn link(kind: LinkKind, ws: &WorkspaceId, at: OffsetDateTime) -> (String, LinkRecord) {
    let token = crate::sessions::random_token(&SystemIds);
    let record = LinkRecord {
        hash: TokenHash::of(&token),
        kind,
        workspace_id: ws.clone(),
        user_id: user_id(),
        created_at: at,
        expires_at: at + time::Duration::hours(1),
    };
    (token, record)
}

pub async fn finds_a_session_by_its_token_hash_only_until_it_ends(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (token, stored) = stored_session(&ws, &user_id(), T0);
    s.create_session(&stored).await.unwrap();
    assert_eq!(
        s.session_by_token(&token.hash(), T0).await.unwrap(),
        Some(stored.clone())
    );
    let other = SessionToken::generate(&SystemIds);
    assert_eq!(s.session_by_token(&other.hash(), T0).await.unwrap(), None);
    // Not seen again: it ends 12 hours later.
    let idle_end = T0 + SESSION_IDLE;
    let just_before = idle_end - time::Duration::milliseconds(1);
    assert!(s
        .session_by_token(&token.hash(), just_before)
        .await
        .unwrap()
        .is_some());
    assert_eq!(
        s.session_by_token(&token.hash(), idle_end).await.unwrap(),
        None
    );
    assert_eq!(
        s.session(&ws, &stored.session.id).await.unwrap(),
        Some(stored),
        "a session is still found by id (for revocation) until deleted"
    );
}

pub async fn a_touch_moves_the_idle_end_but_never_past_the_absolute_end(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let (token, mut stored) = stored_session(&ws, &user_id(), T0);
    s.create_session(&stored).await.unwrap();
    // Seen every 11 hours: alive until the absolute end, 7 days after it began.
    let mut at = T0;
    while at + time::Duration::hours(11) < T0 + SESSION_ABSOLUTE {
        at += time::Duration::hours(11);
        assert!(
            s.session_by_token(&token.hash(), at)
                .await
                .unwrap()
                .is_some(),
            "{at}"
        );
        stored.session.last_seen_at = at;
        s.touch_session(&stored).await.unwrap();
    }
    let read = s
        .session_by_token(&token.hash(), at)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.session.last_seen_at, at);
    let end = T0 + SESSION_ABSOLUTE;
    assert_eq!(s.session_by_token(&token.hash(), end).await.unwrap(), None);
}

pub async fn a_touch_does_not_bring_back_a_deleted_session(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (token, mut stored) = stored_session(&ws, &user_id(), T0);
    s.create_session(&stored).await.unwrap();
    assert!(s.delete_session(&ws, &stored.session.id).await.unwrap());
    stored.session.last_seen_at = T0 + time::Duration::minutes(5);
    s.touch_session(&stored).await.unwrap();
    let at = T0 + time::Duration::minutes(5);
    assert_eq!(s.session_by_token(&token.hash(), at).await.unwrap(), None);
    assert_eq!(s.session(&ws, &stored.session.id).await.unwrap(), None);
}

pub async fn lists_a_users_live_sessions_oldest_first(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (alice, bob) = (user_id(), user_id());
    let (_, older) = stored_session(&ws, &alice, T0);
    let (_, newer) = stored_session(&ws, &alice, T0 + time::Duration::hours(1));
    let (_, ended) = stored_session(&ws, &alice, T0 - time::Duration::days(1));
    let (_, bobs) = stored_session(&ws, &bob, T0);
    let other_ws = WorkspaceId::new(Region::Us, &unique());
    let (_, elsewhere) = stored_session(&other_ws, &alice, T0);
    for x in [&newer, &older, &ended, &bobs, &elsewhere] {
        s.create_session(x).await.unwrap();
    }
    let at = T0 + time::Duration::hours(2);
    let listed = s.sessions_of(&ws, &alice, at).await.unwrap();
    assert_eq!(listed, vec![older.session, newer.session]);
    assert_eq!(
        s.sessions_of(&ws, &bob, at).await.unwrap(),
        vec![bobs.session]
    );
}

pub async fn deletes_one_session_or_every_session_of_a_user(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (alice, bob) = (user_id(), user_id());
    let (t1, a1) = stored_session(&ws, &alice, T0);
    let (t2, a2) = stored_session(&ws, &alice, T0);
    let (t3, a3) = stored_session(&ws, &alice, T0);
    let (tb, b1) = stored_session(&ws, &bob, T0);
    for x in [&a1, &a2, &a3, &b1] {
        s.create_session(x).await.unwrap();
    }
    assert!(s.delete_session(&ws, &a1.session.id).await.unwrap());
    assert!(!s.delete_session(&ws, &a1.session.id).await.unwrap());
    assert_eq!(s.session_by_token(&t1.hash(), T0).await.unwrap(), None);
    let other_ws = WorkspaceId::new(Region::Us, &unique());
    assert!(!s.delete_session(&other_ws, &a2.session.id).await.unwrap());
    assert_eq!(s.delete_sessions_of(&ws, &alice).await.unwrap(), 2);
    for t in [&t2, &t3] {
        assert_eq!(s.session_by_token(&t.hash(), T0).await.unwrap(), None);
    }
    assert!(s.sessions_of(&ws, &alice, T0).await.unwrap().is_empty());
    assert!(s.session_by_token(&tb.hash(), T0).await.unwrap().is_some());
}

pub async fn a_session_token_hash_is_taken_once(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (_, first) = stored_session(&ws, &user_id(), T0);
    s.create_session(&first).await.unwrap();
    let (_, mut second) = stored_session(&ws, &user_id(), T0);
    second.token_hash = first.token_hash.clone();
    assert!(matches!(
        s.create_session(&second).await.unwrap_err(),
        StoreError::Conflict(_)
    ));
}

pub async fn stores_replaces_and_deletes_a_credential(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Eu, &unique());
    let email = crate::email::Email::parse(&format!("{}@example.com", unique())).unwrap();
    let login = LoginKey::of(&email);
    assert_eq!(s.credential(&login).await.unwrap(), None);
    let mut c = Credential {
        login: login.clone(),
        workspace_id: ws,
        user_id: user_id(),
        verifier: PasswordVerifier::from_stored(
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdA$aGFzaA".into(),
        ),
        set_at: T0,
    };
    s.put_credential(&c).await.unwrap();
    assert_eq!(s.credential(&login).await.unwrap(), Some(c.clone()));
    c.verifier =
        PasswordVerifier::from_stored("$argon2id$v=19$m=19456,t=2,p=1$c2FsdDI$aGFzaDI".into());
    c.set_at = T0 + time::Duration::hours(1);
    s.put_credential(&c).await.unwrap();
    assert_eq!(s.credential(&login).await.unwrap(), Some(c));
    s.delete_credential(&login).await.unwrap();
    assert_eq!(s.credential(&login).await.unwrap(), None);
    s.delete_credential(&login).await.unwrap();
}

pub async fn a_link_is_redeemed_once_for_its_kind_until_it_expires(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (token, record) = link(LinkKind::PasswordReset, &ws, T0);
    s.put_link(&record).await.unwrap();
    assert!(matches!(
        s.put_link(&record).await.unwrap_err(),
        StoreError::Conflict(_)
    ));
    let hash = TokenHash::of(&token);
    // Another kind does not consume it.
    assert_eq!(
        s.redeem_link(&hash, LinkKind::Invitation, T0)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        s.redeem_link(&hash, LinkKind::PasswordReset, T0)
            .await
            .unwrap(),
        Some(record)
    );
    assert_eq!(
        s.redeem_link(&hash, LinkKind::PasswordReset, T0)
            .await
            .unwrap(),
        None
    );

    let (token, record) = link(LinkKind::Invitation, &ws, T0);
    s.put_link(&record).await.unwrap();
    let hash = TokenHash::of(&token);
    let at_expiry = record.expires_at;
    assert_eq!(
        s.redeem_link(&hash, LinkKind::Invitation, at_expiry)
            .await
            .unwrap(),
        None
    );
}

pub async fn of_concurrent_redemptions_of_a_link_exactly_one_succeeds(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (token, record) = link(LinkKind::SignIn, &ws, T0);
    s.put_link(&record).await.unwrap();
    let hash = TokenHash::of(&token);
    let attempts = (0..8).map(|_| s.redeem_link(&hash, LinkKind::SignIn, T0));
    let results = join_all(attempts).await;
    let won = results
        .into_iter()
        .filter(|r| matches!(r, Ok(Some(_))))
        .count();
    assert_eq!(won, 1);
}

/// Runs the futures concurrently on this task.
pub async fn join_all<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let handles: Vec<_> = futures.map(Box::pin).collect();
    let mut outputs = Vec::new();
    let mut pending: Vec<_> = handles.into_iter().map(Some).collect();
    // Poll all of them in turn until each is done, so their store calls overlap.
    std::future::poll_fn(|cx| {
        let mut done = true;
        for slot in pending.iter_mut() {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(out) => {
                        outputs.push(out);
                        *slot = None;
                    }
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs
}

pub async fn counts_failures_per_key_and_window_until_expired_or_cleared(s: &dyn SessionStore) {
    let key = format!("acct:{}", unique());
    let other = format!("ip:{}", unique());
    let until = T0 + time::Duration::minutes(15);
    assert_eq!(s.failures(&key, T0, T0).await.unwrap(), 0);
    for n in 1..=3 {
        assert_eq!(s.add_failure(&key, T0, until).await.unwrap(), n);
    }
    assert_eq!(s.add_failure(&other, T0, until).await.unwrap(), 1);
    assert_eq!(s.failures(&key, T0, T0).await.unwrap(), 3);
    let next_window = until;
    assert_eq!(s.failures(&key, next_window, T0).await.unwrap(), 0);
    assert_eq!(s.failures(&key, T0, until).await.unwrap(), 0, "expired");
    s.clear_failures(&key, T0).await.unwrap();
    assert_eq!(s.failures(&key, T0, T0).await.unwrap(), 0);
    assert_eq!(s.failures(&other, T0, T0).await.unwrap(), 1);
}

pub async fn concurrent_failures_are_all_counted(s: &dyn SessionStore) {
    let key = format!("acct:{}", unique());
    let until = T0 + time::Duration::minutes(15);
    let adds = (0..10).map(|_| s.add_failure(&key, T0, until));
    let counts: Vec<u32> = join_all(adds)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    let mut sorted = counts.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, (1..=10).collect::<Vec<u32>>(), "{counts:?}");
    assert_eq!(s.failures(&key, T0, T0).await.unwrap(), 10);
}

pub async fn sweep_leaves_live_records(s: &dyn SessionStore) {
    let ws = WorkspaceId::new(Region::Us, &unique());
    let (token, live) = stored_session(&ws, &user_id(), T0);
    s.create_session(&live).await.unwrap();
    let (link_token, record) = link(LinkKind::SignIn, &ws, T0);
    s.put_link(&record).await.unwrap();
    s.sweep(T0).await.unwrap();
    assert!(s
        .session_by_token(&token.hash(), T0)
        .await
        .unwrap()
        .is_some());
    let hash = TokenHash::of(&link_token);
    assert!(s
        .redeem_link(&hash, LinkKind::SignIn, T0)
        .await
        .unwrap()
        .is_some());
}

/// A mailer that keeps what it is given, for use-case tests that follow a mailed link.
#[derive(Debug, Default)]
pub struct RecordingMailer(std::sync::Mutex<Vec<Mail>>);

impl RecordingMailer {
    /// Every mail sent so far, oldest first.
    pub fn sent(&self) -> Vec<Mail> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The subjects of the mails sent so far, oldest first.
    pub fn subjects(&self) -> Vec<String> {
        self.sent().into_iter().map(|m| m.subject).collect()
    }

    /// The token of the last link to `path` (`/invite/`, `/reset/`, `/sign-in/link/`) mailed.
    pub fn last_token(&self, path: &str) -> Option<String> {
        self.sent().iter().rev().find_map(|m| {
            let at = m.text.find(path)? + path.len();
            Some(
                m.text[at..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
                    .collect(),
            )
        })
    }
}

#[async_trait]
impl Mailer for RecordingMailer {
    async fn send(&self, mail: &Mail) -> Result<(), MailError> {
        self.0
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(mail.clone());
        Ok(())
    }
}
