//! A user's email address: validated once, stored lowercase, never printed by `Debug`.

use std::fmt;

use serde::{Deserialize, Serialize};

/// An email address of a user of the admin API (not a data subject's: those are hashed at
/// ingest and never kept). Trimmed and lowercased, as the stores compare them.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct Email(String);

crate::newtype::string_newtype!(Email: InvalidEmail);

/// Why a string is not an [`Email`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be an email address")]
pub struct InvalidEmail;

impl Email {
    /// At most 254 characters, one `@` with something before it, a dot in the domain, no
    /// whitespace inside.
    pub fn parse(s: &str) -> Result<Self, InvalidEmail> {
        let email = s.trim();
        let valid = email.len() <= 254
            && email.split_once('@').is_some_and(|(l, d)| {
                !l.is_empty() && d.contains('.') && !email.contains(char::is_whitespace)
            });
        if valid {
            Ok(Self(email.to_lowercase()))
        } else {
            Err(InvalidEmail)
        }
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Email(<redacted>)")
    }
}

impl std::ops::Deref for Email {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_email_is_trimmed_lowercased_and_never_shown_by_debug() {
        let e = Email::parse("  Ada.Lovelace@Example.COM ").unwrap();
        assert_eq!(e.as_str(), "ada.lovelace@example.com");
        assert_eq!(format!("{e:?}"), "Email(<redacted>)");
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@localhost",
            "a da@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(InvalidEmail), "{bad}");
        }
        assert_eq!(
            Email::parse(&format!("{}@example.com", "a".repeat(250))),
            Err(InvalidEmail)
        );
    }
}
