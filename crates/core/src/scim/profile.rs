//! What an identity provider says of a user beyond TrackLayer's own fields: its `userName`
//! (any string: an email address, `jdoe`, an employee number) and its `emails` as sent.
//!
//! The sign-in address (`User::email`) is derived from them by [`ScimProfile::sign_in_address`]:
//! the primary (else the first) of `emails` that is an email address, else `userName` when it is
//! one. A user with neither is still provisioned (identity providers create users with a bare
//! `userName`): their sign-in address is the reserved `<user id>@scim.invalid` (RFC 2606), which
//! is never mailed (no invitation) and matches no SAML NameID, so such a user cannot sign in
//! until the identity provider gives them an email address; their role and `active` are kept.

use serde::{Deserialize, Serialize};

use crate::email::Email;
use crate::user_id::UserId;

/// What a store answers (`StoreError::Conflict`) when a write would give a second user of the
/// workspace the same [`user_name_key`].
pub const USER_NAME_TAKEN: &str = "a user with this userName exists";

/// The key by which `userName` is unique in a workspace: the identity provider's `userName`
/// (a user the admin API made: their sign-in address, which SCIM reads as their `userName`),
/// lowercased. Stores enforce it in the write itself (a unique index; a uniqueness item in
/// the same transaction), so two identity provider calls racing for one name cannot both win.
pub fn user_name_key(user: &crate::workspace::User) -> String {
    user.scim
        .as_ref()
        .map_or(user.email.as_str(), |p| p.user_name.as_str())
        .to_lowercase()
}

/// The domain of the sign-in address of a user provisioned without any email address.
pub const NO_EMAIL_DOMAIN: &str = "scim.invalid";

/// Longest `userName` kept.
pub const MAX_USER_NAME_LEN: usize = 256;

/// Most `emails` values kept per user.
pub const MAX_EMAILS: usize = 10;

/// One `emails` value as the identity provider sent it.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimEmail {
    pub value: String,
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary: Option<bool>,
}

/// A user as the identity provider named them.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScimProfile {
    pub user_name: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub emails: Vec<ScimEmail>,
    /// The provider left `active` unassigned (never sent it, or removed it): the user is
    /// active, and `active` is not given back.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub active_unassigned: bool,
}

impl std::fmt::Debug for ScimProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScimProfile(<redacted>)")
    }
}

impl std::fmt::Debug for ScimEmail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ScimEmail(<redacted>)")
    }
}

impl ScimProfile {
    /// The address the user signs in with (see the module documentation).
    pub fn sign_in_address(&self, id: &UserId) -> Email {
        let primary = self
            .emails
            .iter()
            .find(|e| e.primary == Some(true))
            .into_iter()
            .chain(self.emails.iter());
        primary
            .filter_map(|e| Email::parse(&e.value).ok())
            .next()
            .or_else(|| Email::parse(&self.user_name).ok())
            .unwrap_or_else(|| placeholder(id))
    }
}

/// The sign-in address of a user without any email address.
pub fn placeholder(id: &UserId) -> Email {
    Email::parse(&format!("{}@{NO_EMAIL_DOMAIN}", id.as_str()))
        .expect("a user id makes a valid local part")
}

/// Whether `email` is the placeholder of a user without an email address (never mailed).
pub fn is_placeholder(email: &Email) -> bool {
    email
        .as_str()
        .rsplit_once('@')
        .is_some_and(|(_, d)| d == NO_EMAIL_DOMAIN)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn email(value: &str, primary: Option<bool>) -> ScimEmail {
        ScimEmail {
            value: value.into(),
            kind: None,
            primary,
        }
    }

    /// The sign-in address of user `usr_0123456789abcdef` provisioned with `user_name` and
    /// `emails`.
    fn sign_in_address(user_name: &str, emails: Vec<ScimEmail>) -> Email {
        let id = UserId::parse("usr_0123456789abcdef").unwrap();
        let p = ScimProfile {
            user_name: user_name.into(),
            emails,
            active_unassigned: false,
        };
        p.sign_in_address(&id)
    }

    #[test]
    fn the_primary_email_is_the_sign_in_address_whatever_the_user_name() {
        let emails = vec![
            email("home@example.org", None),
            email("Work@Example.com", Some(true)),
        ];
        assert_eq!(sign_in_address("jdoe", emails).as_str(), "work@example.com");
    }

    #[test]
    fn an_email_shaped_user_name_signs_in_when_no_email_is_given() {
        let emails = vec![email("not an address", Some(true))];
        assert_eq!(
            sign_in_address("ann@example.com", emails).as_str(),
            "ann@example.com"
        );
    }

    #[test]
    fn a_user_without_any_email_gets_a_reserved_address_that_is_never_mailed() {
        let address = sign_in_address("E004711", vec![]);
        assert_eq!(address.as_str(), "usr_0123456789abcdef@scim.invalid");
        assert!(is_placeholder(&address));
        assert!(!is_placeholder(
            &Email::parse("a@scim.invalid.example").unwrap()
        ));
    }
}
