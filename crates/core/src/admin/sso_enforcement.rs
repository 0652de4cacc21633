//! SSO enforcement (whitepaper §04: "SAML SSO can be enforced for managed domains to reduce
//! password exposure"): when a workspace's SAML connection enforces SSO, its users whose email
//! is in a managed domain sign in only through the IdP. Password sign-in, setting a password
//! from an invitation or reset link, changing a password and one-time sign-in links are refused
//! with [`AdminError::SsoRequired`]; a reset request mails the SSO sign-in address instead of
//! a reset link.
//!
//! What decides is the account's own stored email and its own workspace's connection, never
//! the address as typed (so `ALICE@Example.COM.` is no way round) and never another
//! workspace's connection (claiming `gmail.com` in one workspace locks out nobody elsewhere).
//! The refusal is given only to someone who proved they hold the account (its password or a
//! mailed link): an unknown address, a wrong password and a reset request get the answers
//! they always got, so enforcement reveals no account.
//!
//! Break-glass: the connection may name one admin (`break_glass_user`) who keeps the local
//! ways in, for when the IdP is down or misconfigured. It must be an admin when the connection
//! is put and when it is used, and every use is audited as `sso.break_glass`.

use serde_json::json;

use super::{AdminError, AdminService};
use crate::audit::AuditAction;
use crate::keys::Role;
use crate::saml::SamlConnection;
use crate::user_id::UserId;
use crate::workspace::{User, WorkspaceId};

/// What enforcement lets a user do without the IdP.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Gate {
    /// No enforcing connection manages the user's domain.
    Open,
    /// Enforced, but the user is the workspace's break-glass admin.
    BreakGlass,
    /// Enforced: only SSO, which starts at this path.
    SsoOnly(String),
}

/// The path that starts an SP-initiated SAML sign-in in `ws`.
fn sso_sign_in_path(ws: &WorkspaceId) -> String {
    format!("/sso/saml/{ws}/login")
}

fn gate(connection: Option<&SamlConnection>, user: &User) -> Gate {
    match connection {
        Some(c) if c.enforce_sso && c.manages(&user.email) => {
            if c.break_glass_user.as_ref() == Some(&user.id) && user.role == Role::Admin {
                Gate::BreakGlass
            } else {
                Gate::SsoOnly(sso_sign_in_path(&user.workspace_id))
            }
        }
        _ => Gate::Open,
    }
}

impl AdminService {
    async fn gate_of(&self, user: &User) -> Result<Gate, AdminError> {
        let connection = self
            .ports
            .control
            .saml_connection(&user.workspace_id)
            .await?;
        Ok(gate(connection.as_ref(), user))
    }

    /// A new secret of the personal token `key` (a rotation mints one) goes only to a session
    /// begun through SSO (`sso_session`) when the token's user is in a domain that enforces
    /// SSO, break-glass admin included: a password session, or another token, cannot extend
    /// the account's access past the IdP. The operator on the machine is not asked.
    pub(super) async fn require_sso_for_personal_token(
        &self,
        p: &crate::admin::Principal,
        key: &crate::keys::ApiKeyRecord,
        sso_session: bool,
    ) -> Result<(), AdminError> {
        let Some(user_id) = key.user_id.as_ref() else {
            return Ok(());
        };
        if sso_session || p.actor == crate::admin::Principal::operator(&p.workspace_id).actor {
            return Ok(());
        }
        let Some(user) = self.live_user(&key.workspace_id, user_id).await? else {
            return Ok(());
        };
        match self.gate_of(&user).await? {
            Gate::Open => Ok(()),
            Gate::BreakGlass | Gate::SsoOnly(_) => Err(AdminError::SsoSessionRequired {
                sign_in_path: sso_sign_in_path(&user.workspace_id),
            }),
        }
    }

    /// Lets `user` in by a local way (`via`: `password`, `password_reset`, `invitation`,
    /// `sign_in_link`, `password_change`) unless SSO is enforced for them; the break-glass
    /// admin passes, audited.
    pub(crate) async fn require_local_sign_in(
        &self,
        user: &User,
        via: &str,
    ) -> Result<(), AdminError> {
        match self.gate_of(user).await? {
            Gate::Open => Ok(()),
            Gate::BreakGlass => {
                self.audit_own(user, AuditAction::SsoBreakGlass, json!({"via": via}))
                    .await
            }
            Gate::SsoOnly(sign_in_path) => Err(AdminError::SsoRequired { sign_in_path }),
        }
    }

    /// For a reset request of a user who signs in only through SSO: mails them where to sign
    /// in instead of a reset link, and says so (`true`). The HTTP answer is the same either way.
    pub(crate) async fn mailed_sso_instead_of_reset(
        &self,
        user: &User,
    ) -> Result<bool, AdminError> {
        let Gate::SsoOnly(path) = self.gate_of(user).await? else {
            return Ok(false);
        };
        let text = format!(
            "Someone asked to reset the password of your TrackLayer account.\n\n\
             Your organization signs you in to TrackLayer through its identity provider \
             (single sign-on), so this account has no password to reset. Sign in here:\n\n\
             {}{path}\n\n\
             If it was not you, ignore this mail.\n",
            self.public_url
        );
        self.mail(user, "Sign in to TrackLayer with single sign-on", text)
            .await?;
        Ok(true)
    }

    /// Checks a connection's break-glass user before it is put: an admin of the workspace.
    pub(crate) async fn check_break_glass_user(
        &self,
        ws: &WorkspaceId,
        user: Option<&UserId>,
    ) -> Result<(), AdminError> {
        let Some(id) = user else {
            return Ok(());
        };
        let is_admin = self
            .live_user(ws, id)
            .await?
            .is_some_and(|u| u.role == Role::Admin);
        if !is_admin {
            return Err(AdminError::invalid(
                "break_glass_user",
                "must be the id of an active admin of this workspace",
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::email::Email;
    use crate::testkit::T0;

    fn connection(ws: &WorkspaceId, domains: &[&str]) -> SamlConnection {
        crate::testkit::saml::enforcing_connection(ws, domains, Some(&UserId::owner()))
    }

    fn user(ws: &WorkspaceId, email: &str, id: UserId, role: Role) -> User {
        User {
            id,
            workspace_id: ws.clone(),
            email: Email::parse(email).unwrap(),
            role,
            created_at: T0,
            external_id: None,
            active: true,
            scim: None,
        }
    }

    fn gate_for(email: &str) -> Gate {
        let ws = crate::testkit::workspace(crate::workspace::Region::Eu).id;
        let c = connection(&ws, &["example.com"]);
        let u = user(&ws, email, UserId::parse("usr_ana").unwrap(), Role::Editor);
        gate(Some(&c), &u)
    }

    #[test]
    fn every_spelling_of_a_managed_domain_is_enforced() {
        for email in [
            "ana@example.com",
            "Ana@EXAMPLE.COM",
            "ana@example.com.",
            "ana+sso-bypass@example.com",
            "ana@ｅｘａｍｐｌｅ.ｃｏｍ",
            "\"ana@evil.test\"@example.com",
        ] {
            assert!(
                matches!(gate_for(email), Gate::SsoOnly(_)),
                "{email} must sign in through SSO"
            );
        }
    }

    #[test]
    fn look_alikes_subdomains_and_other_domains_are_not_the_managed_domain() {
        for email in [
            "ana@exаmple.com",
            "ana@xn--exmple-4nf.com",
            "ana@sub.example.com",
            "ana@example.com.evil.test",
            "ana@evil-example.com",
            "ana@example.com@evil.test",
            "ana@example.co",
        ] {
            assert_eq!(gate_for(email), Gate::Open, "{email}");
        }
    }

    #[test]
    fn only_the_named_break_glass_admin_passes_and_only_while_an_admin() {
        let ws = crate::testkit::workspace(crate::workspace::Region::Eu).id;
        let c = connection(&ws, &["example.com"]);
        let owner = user(&ws, "own@example.com", UserId::owner(), Role::Admin);
        assert_eq!(gate(Some(&c), &owner), Gate::BreakGlass);
        let demoted = User {
            role: Role::Editor,
            ..owner.clone()
        };
        assert!(matches!(gate(Some(&c), &demoted), Gate::SsoOnly(_)));
        let other_admin = user(
            &ws,
            "adm@example.com",
            UserId::parse("usr_adm").unwrap(),
            Role::Admin,
        );
        assert!(matches!(gate(Some(&c), &other_admin), Gate::SsoOnly(_)));
        let relaxed = SamlConnection {
            enforce_sso: false,
            ..c
        };
        assert_eq!(gate(Some(&relaxed), &other_admin), Gate::Open);
        assert_eq!(gate(None, &other_admin), Gate::Open);
    }

    #[test]
    fn the_refusal_names_the_workspaces_sso_sign_in_path() {
        let Gate::SsoOnly(path) = gate_for("ana@example.com") else {
            panic!("enforced");
        };
        assert!(
            path.starts_with("/sso/saml/ws_") && path.ends_with("/login"),
            "{path}"
        );
    }
}
