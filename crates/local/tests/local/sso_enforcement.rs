//! SSO enforcement on the console's local ways in (password, reset, invitation, sign-in
//! link), as an attacker would probe it: other spellings of the address, accounts that do
//! not exist, another workspace claiming the domain, and the break-glass admin.

use tracklayer_core::saml::SamlStore;
use tracklayer_core::testkit::saml::enforcing_connection;
use tracklayer_core::user_id::UserId;
use tracklayer_core::workspace::WorkspaceId;
use tracklayer_local::SqliteControlStore;

use super::*;

impl Console {
    /// The workspace's IdP manages `domains` and enforces SSO; `break_glass` keeps a password.
    async fn enforce(&self, ws: &WorkspaceId, domains: &[&str], break_glass: Option<&UserId>) {
        SqliteControlStore::new(self.db.clone())
            .put_saml_connection(&enforcing_connection(ws, domains, break_glass))
            .await
            .unwrap();
    }

    fn sso_path(&self) -> String {
        format!("/sso/saml/{}/login", self.ws.id)
    }

    fn is_sso_required(&self, r: Result<SignedIn, AdminError>) -> bool {
        matches!(r, Err(AdminError::SsoRequired { sign_in_path }) if sign_in_path == self.sso_path())
    }
}

#[tokio::test]
async fn a_correct_password_is_refused_pointing_to_sso_and_a_wrong_one_or_an_unknown_account_learns_nothing(
) {
    let c = Console::new().await;
    c.member("ana@example.com", Role::Editor).await;
    c.enforce(&c.ws.id, &["example.com"], None).await;

    let right = c.sign_in("ana@example.com", PASSWORD).await;
    assert!(c.is_sso_required(right));
    for (email, password) in [
        ("ana@example.com", "not-the-password-at-all"),
        ("nobody@example.com", PASSWORD),
        ("nobody@example.com", "not-the-password-at-all"),
    ] {
        assert!(
            matches!(
                c.sign_in(email, password).await,
                Err(AdminError::SignInRefused)
            ),
            "{email} gets the answer of a wrong password"
        );
    }
    let refusal = AdminError::SsoRequired {
        sign_in_path: c.sso_path(),
    }
    .to_string();
    assert!(refusal.contains("single sign-on") && refusal.contains(&c.sso_path()));
}

#[tokio::test]
async fn an_account_stored_under_another_spelling_of_a_managed_domain_is_enforced_too() {
    let c = Console::new().await;
    for email in [
        "eve@example.com.",
        "eve+tag@example.com",
        "Eve@EXAMPLE.COM",
        "eve@ｅｘａｍｐｌｅ.com",
    ] {
        c.member(email, Role::Viewer).await;
    }
    c.enforce(&c.ws.id, &["example.com"], None).await;
    for email in [
        "eve@example.com.",
        "eve+tag@example.com",
        "eve@example.com",
        "eve@ｅｘａｍｐｌｅ.com",
    ] {
        let r = c.sign_in(email, PASSWORD).await;
        assert!(c.is_sso_required(r), "{email} must go through SSO");
    }
}

#[tokio::test]
async fn look_alike_and_sub_domains_and_another_workspaces_claim_enforce_nothing() {
    let c = Console::new().await;
    for email in [
        "ana@exаmple.com",
        "ana@sub.example.com",
        "ana@example.com@mail.test",
    ] {
        c.member(email, Role::Viewer).await;
    }
    c.member("bob@example.org", Role::Viewer).await;
    c.enforce(&c.ws.id, &["example.com"], None).await;
    // Another workspace claiming example.org (say, gmail.com) locks nobody out here.
    let other = tracklayer_core::testkit::workspace(Region::Us).id;
    c.enforce(&other, &["example.org"], None).await;
    for email in [
        "ana@exаmple.com",
        "ana@sub.example.com",
        "ana@example.com@mail.test",
        "bob@example.org",
    ] {
        assert!(
            c.sign_in(email, PASSWORD).await.is_ok(),
            "{email} is not in a domain this workspace enforces"
        );
    }
}

#[tokio::test]
async fn a_reset_request_mails_the_sso_sign_in_instead_of_a_link_and_an_older_link_sets_nothing() {
    let c = Console::new().await;
    c.member("ana@example.com", Role::Editor).await;
    c.request_password_reset("ana@example.com").await;
    let older = c.mail.last_token("/reset/").expect("a reset mail");
    c.enforce(&c.ws.id, &["example.com"], None).await;

    let before = c.mail.sent().len();
    c.request_password_reset("ana@example.com").await;
    let mails = c.mail.sent();
    assert_eq!(mails.len(), before + 1);
    let mail = mails.last().unwrap();
    assert_eq!(mail.to, vec!["ana@example.com".to_owned()]);
    assert!(mail
        .text
        .contains(&format!("https://console.example.com{}", c.sso_path())));
    assert!(!mail.text.contains("/reset/"), "{}", mail.text);

    let r = c.reset_password(&older, "copper-meadow-17-kettle").await;
    assert!(c.is_sso_required(r));
    assert!(c.is_sso_required(c.sign_in("ana@example.com", PASSWORD).await));
}

#[tokio::test]
async fn an_invitation_and_a_sign_in_link_of_an_enforced_user_open_no_session() {
    let c = Console::new().await;
    let owner_domain = format!("{}.invalid", c.ws.id.as_str().replace('_', "-"));
    c.enforce(&c.ws.id, &["example.com", &owner_domain], None)
        .await;
    let (_, token) = c.invite("new@example.com", Role::Viewer).await;
    let r = c.accept_invitation(&token, PASSWORD).await;
    assert!(c.is_sso_required(r));
    assert!(
        matches!(
            c.sign_in("new@example.com", PASSWORD).await,
            Err(AdminError::SignInRefused)
        ),
        "no password was set"
    );

    let link = c.admin.owner_sign_in_link(&c.operator).await.unwrap();
    let token = link.url.rsplit('/').next().unwrap();
    assert!(c.is_sso_required(c.redeem_sign_in_link(token).await));
}

#[tokio::test]
async fn the_break_glass_admin_keeps_password_link_and_reset_and_every_use_is_audited() {
    let c = Console::new().await;
    let (root, _) = c.member("root@example.com", Role::Admin).await;
    let (ana, _) = c.member("ana@example.com", Role::Admin).await;
    c.enforce(&c.ws.id, &["example.com"], Some(&root.id)).await;

    assert!(c.sign_in("root@example.com", PASSWORD).await.is_ok());
    c.request_password_reset("root@example.com").await;
    let token = c
        .mail
        .last_token("/reset/")
        .expect("a reset link for break-glass");
    c.reset_password(&token, "copper-meadow-17-kettle")
        .await
        .unwrap();
    assert!(c.is_sso_required(c.sign_in("ana@example.com", PASSWORD).await));

    let uses: Vec<_> = c
        .audit_actions()
        .await
        .into_iter()
        .filter(|(action, _, _)| action == "sso.break_glass")
        .map(|(_, target, summary)| (target, summary["via"].as_str().unwrap().to_owned()))
        .collect();
    assert_eq!(
        uses,
        [
            (root.id.to_string(), "password".to_owned()),
            (root.id.to_string(), "password_reset".to_owned())
        ]
    );
    assert!(uses.iter().all(|(t, _)| *t != ana.id.to_string()));

    // Demoted, the break-glass user is one more SSO user.
    c.admin
        .set_role(&c.operator, &root.id, Role::Editor)
        .await
        .unwrap();
    let r = c
        .sign_in("root@example.com", "copper-meadow-17-kettle")
        .await;
    assert!(c.is_sso_required(r));
}

impl Console {
    /// The id of the owner's personal token (made with the workspace).
    async fn owner_pat(&self) -> tracklayer_core::keys::KeyId {
        use tracklayer_core::ports::ControlStore;
        SqliteControlStore::new(self.db.clone())
            .api_keys(&self.ws.id, T0)
            .await
            .unwrap()
            .into_iter()
            .find(|k| k.user_id.as_ref() == Some(&UserId::owner()))
            .expect("the owner's personal token")
            .id
    }

    /// A console session of the owner from the operator's sign-in link (not through SSO).
    async fn owner_link_session(&self) -> tracklayer_core::sessions::ConsoleSession {
        let link = self.admin.owner_sign_in_link(&self.operator).await.unwrap();
        let token = link.url.rsplit('/').next().unwrap();
        let signed = self.redeem_sign_in_link(token).await.unwrap();
        self.admin.console_session(&signed.token).await.unwrap()
    }
}

#[tokio::test]
async fn only_a_session_begun_through_sso_mints_a_personal_token_for_an_enforced_user() {
    use tracklayer_core::testkit::sessions::stored_session;
    let c = Console::new().await;
    let owner = UserId::owner();
    c.admin
        .set_email(&c.operator, &owner, "own@example.com")
        .await
        .unwrap();
    c.enforce(&c.ws.id, &["example.com"], Some(&owner)).await;
    let pat = c.owner_pat().await;
    let refused = |r: Result<_, AdminError>| matches!(r, Err(AdminError::SsoSessionRequired { sign_in_path }) if sign_in_path == c.sso_path());

    // Break-glass: the owner's sign-in link opens a session, but not through SSO.
    let local = c.owner_link_session().await;
    assert!(!local.sso);
    let r = c
        .admin
        .rotate_key_in_session(&local.principal, local.sso, pat.as_str(), None)
        .await;
    assert!(refused(r), "a break-glass session mints no token");
    // Nor does the token itself, over the admin API.
    let with_token = Principal {
        key_id: Some(pat.clone()),
        ..local.principal.clone()
    };
    assert!(refused(
        c.admin.rotate_key(&with_token, pat.as_str(), None).await
    ));

    // A session begun through SSO does.
    let (sso_token, mut stored) = stored_session(&c.ws.id, &owner, T0);
    stored.session.sso = true;
    c.sessions.create_session(&stored).await.unwrap();
    let sso = c.admin.console_session(&sso_token).await.unwrap();
    let minted = c
        .admin
        .rotate_key_in_session(&sso.principal, sso.sso, pat.as_str(), None)
        .await
        .unwrap();
    // And the operator on the machine is not asked.
    c.admin
        .rotate_key(&c.operator, minted.key.id.as_str(), None)
        .await
        .unwrap();
    let why = AdminError::SsoSessionRequired {
        sign_in_path: c.sso_path(),
    }
    .to_string();
    assert!(
        why.contains("single sign-on") && why.contains(&c.sso_path()),
        "{why}"
    );
}

#[tokio::test]
async fn a_password_session_mints_tokens_for_users_outside_enforced_domains() {
    let c = Console::new().await;
    c.enforce(&c.ws.id, &["example.com"], None).await;
    let pat = c.owner_pat().await;
    let me = c.owner_link_session().await;
    c.admin
        .rotate_key_in_session(&me.principal, me.sso, pat.as_str(), None)
        .await
        .unwrap();
}
