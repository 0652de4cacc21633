//! Finding where an address signs in through SSO (the sign-in page's "Sign in with SSO"), as
//! an attacker would probe it: other spellings of the address, look-alike and sub-domains,
//! a connection of no open workspace, and a workspace that changed its domains.

use tracklayer_core::admin::SsoChoice;
use tracklayer_core::ports::ControlStore;
use tracklayer_core::saml::SamlStore;
use tracklayer_core::testkit::saml::enforcing_connection;
use tracklayer_core::workspace::Workspace;
use tracklayer_local::SqliteControlStore;

use super::*;

impl Console {
    fn store(&self) -> SqliteControlStore {
        SqliteControlStore::new(self.db.clone())
    }

    /// Another open workspace named `name`.
    async fn another_workspace(&self, name: &str) -> Workspace {
        let ws = Workspace {
            name: name.into(),
            ..tracklayer_core::testkit::workspace(Region::Us)
        };
        self.store().create_workspace(&ws).await.unwrap();
        ws
    }

    /// `ws` manages `domains` (SSO through `https://idp.example.test/sso`).
    async fn manage(&self, ws: &Workspace, domains: &[&str]) {
        let connection = enforcing_connection(&ws.id, domains, None);
        self.store().put_saml_connection(&connection).await.unwrap();
    }

    async fn choices(&self, email: &str) -> Vec<SsoChoice> {
        self.admin.sso_choices(email).await.unwrap()
    }
}

fn offered(choices: &[SsoChoice]) -> Vec<(&str, &str)> {
    choices
        .iter()
        .map(|c| (c.name.as_str(), c.idp_host.as_str()))
        .collect()
}

#[tokio::test]
async fn an_address_finds_every_open_workspace_managing_its_domain_with_its_idp_host() {
    let c = Console::new().await;
    let agency = c.another_workspace("Agency").await;
    c.manage(&c.ws, &["example.com"]).await;
    c.manage(&agency, &["example.com", "example.org"]).await;

    for email in ["jo@example.com", "Jo@EXAMPLE.com.", "  jo@ｅxample.com "] {
        assert_eq!(
            offered(&c.choices(email).await),
            [
                ("Agency", "idp.example.test"),
                ("Console", "idp.example.test")
            ],
            "{email:?}: both, by name"
        );
    }
    let found = c.choices("jo@example.org").await;
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].workspace_id, agency.id);

    for email in [
        "jo@exаmple.com",
        "jo@sub.example.com",
        "jo@example.com.evil.test",
        "jo@example.net",
    ] {
        assert!(c.choices(email).await.is_empty(), "{email:?} finds nothing");
    }
    for email in ["", "jo", "jo@", "@example.com", "jo@exa mple.com"] {
        assert!(
            matches!(
                c.admin.sso_choices(email).await,
                Err(AdminError::Invalid { ref field, .. }) if field == "email"
            ),
            "{email:?} is refused naming the field"
        );
    }
}

#[tokio::test]
async fn a_dropped_domain_a_removed_connection_or_no_open_workspace_offers_nothing() {
    let c = Console::new().await;
    let agency = c.another_workspace("Agency").await;
    c.manage(&c.ws, &["example.com"]).await;
    c.manage(&agency, &["example.com"]).await;

    // The agency moves to its own domain: example.com is the console's alone.
    c.manage(&agency, &["agency.example"]).await;
    assert_eq!(
        offered(&c.choices("jo@example.com").await),
        [("Console", "idp.example.test")]
    );
    // The console removes its connection.
    assert!(c.store().delete_saml_connection(&c.ws.id).await.unwrap());
    assert!(c.choices("jo@example.com").await.is_empty());

    // A connection whose workspace is closed (or was never stored) is not offered.
    let closed = Workspace {
        closed_at: Some(T0),
        ..agency.clone()
    };
    c.store().close_workspace(&closed).await.unwrap();
    assert!(c.choices("jo@agency.example").await.is_empty());
    let ghost = tracklayer_core::testkit::workspace(Region::Us);
    c.manage(&ghost, &["ghost.example"]).await;
    assert!(c.choices("jo@ghost.example").await.is_empty());
}
