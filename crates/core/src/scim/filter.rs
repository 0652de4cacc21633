//! The SCIM `filter` subset TrackLayer answers (RFC 7644 §3.4.2.2): one comparison
//! `<attribute> <eq|co|sw> "<string>"` on `userName`, `emails` / `emails.value` or
//! `externalId`. Anything else is refused as `invalidFilter`, never read loosely.

use crate::workspace::User;

/// A parsed filter.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    attribute: Attribute,
    op: Op,
    value: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Attribute {
    UserName,
    Email,
    ExternalId,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    Eq,
    Co,
    Sw,
}

/// Why a filter was refused (SCIM `invalidFilter`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid filter: {0}")]
pub struct FilterError(pub &'static str);

impl Filter {
    pub fn parse(text: &str) -> Result<Self, FilterError> {
        let text = text.trim();
        let (attribute, rest) = text
            .split_once(char::is_whitespace)
            .ok_or(FilterError("expected <attribute> <eq|co|sw> \"<value>\""))?;
        let (op, value) = rest
            .trim_start()
            .split_once(char::is_whitespace)
            .ok_or(FilterError("expected an operator and a quoted value"))?;
        let attribute = match attribute.to_ascii_lowercase().as_str() {
            "username" => Attribute::UserName,
            "emails" | "emails.value" => Attribute::Email,
            "externalid" => Attribute::ExternalId,
            _ => {
                return Err(FilterError(
                    "only userName, emails, emails.value and externalId can be filtered",
                ))
            }
        };
        let op = match op.to_ascii_lowercase().as_str() {
            "eq" => Op::Eq,
            "co" => Op::Co,
            "sw" => Op::Sw,
            _ => {
                return Err(FilterError(
                    "only the eq, co and sw operators are supported",
                ))
            }
        };
        let value = value.trim();
        if !(value.len() >= 2 && value.starts_with('"') && value.ends_with('"')) {
            return Err(FilterError("the value must be one JSON string"));
        }
        let value: String = serde_json::from_str(value)
            .map_err(|_| FilterError("the value must be one JSON string"))?;
        Ok(Self {
            attribute,
            op,
            value,
        })
    }

    /// Whether `user` passes. `userName` and emails compare case-insensitively (RFC 7643
    /// §4.1.1: `caseExact` false), `externalId` exactly.
    pub fn matches(&self, user: &User) -> bool {
        let profile = super::users::profile_of(user);
        let want = self.value.to_ascii_lowercase();
        match self.attribute {
            Attribute::UserName => self.compare(&profile.user_name.to_ascii_lowercase(), &want),
            Attribute::Email => profile
                .emails
                .iter()
                .any(|e| self.compare(&e.value.to_ascii_lowercase(), &want)),
            Attribute::ExternalId => user
                .external_id
                .as_ref()
                .is_some_and(|e| self.compare(e, &self.value)),
        }
    }

    fn compare(&self, have: &str, want: &str) -> bool {
        match self.op {
            Op::Eq => have == want,
            Op::Co => have.contains(want),
            Op::Sw => have.starts_with(want),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testkit::users::user;
    use crate::workspace::{Region, WorkspaceId};

    fn alice() -> User {
        let ws = WorkspaceId::new(Region::Us, "0123456789abcdef0123456789abcdef");
        let mut u = user(&ws, "Alice@Example.com", crate::keys::Role::Viewer);
        u.external_id = Some("00u1ABC".into());
        u
    }

    #[test]
    fn eq_co_and_sw_match_user_name_and_emails_case_insensitively() {
        for f in [
            r#"userName eq "alice@example.com""#,
            r#"emails co "EXAMPLE""#,
            r#"emails.value sw "alice@""#,
            r#"USERNAME EQ "ALICE@EXAMPLE.COM""#,
        ] {
            assert!(Filter::parse(f).unwrap().matches(&alice()), "{f}");
        }
        assert!(!Filter::parse(r#"userName eq "bob@example.com""#)
            .unwrap()
            .matches(&alice()));
    }

    #[test]
    fn external_id_compares_exactly() {
        assert!(Filter::parse(r#"externalId eq "00u1ABC""#)
            .unwrap()
            .matches(&alice()));
        assert!(!Filter::parse(r#"externalId eq "00u1abc""#)
            .unwrap()
            .matches(&alice()));
    }

    #[test]
    fn refuses_what_it_does_not_understand_instead_of_matching_everything() {
        for f in [
            "",
            "userName",
            r#"userName eq"#,
            r#"userName eq alice"#,
            r#"userName pr"#,
            r#"userName gt "a""#,
            r#"password eq "x""#,
            r#"userName eq "a" or userName eq "b""#,
            r#"userName eq "unterminated"#,
        ] {
            assert!(Filter::parse(f).is_err(), "{f}");
        }
    }
}
