//! SAML 2.0 single sign-on (whitepaper §04): a workspace's connection to its identity
//! provider, the state SP-initiated login and the replay cache keep, and the rules sign-in
//! follows. Verification of responses is `tracklayer-saml`'s strict profile; the use cases are
//! on [`crate::admin::AdminService`] (`saml_*`).

mod connection;
mod store;

pub(crate) use connection::service_provider;
pub use connection::{
    acs_url, entity_id, mail_domain, RoleRule, SamlConnection, SamlSettings, MAX_MANAGED_DOMAINS,
    MAX_ROLE_RULES,
};
pub use store::{AssertionUse, PendingRequest, SamlStore, REQUEST_TTL};
