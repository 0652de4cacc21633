//! The id of a user of the admin API: `usr_` and 1 to 64 lowercase letters and digits.

use serde::{Deserialize, Serialize};

use crate::clock::Ids;

/// `usr_<id>`: parsed once where it enters (a path, a stored record), generated only by
/// [`UserId::generate`]. Serialized as the same string. Safe to log and show.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(into = "String", try_from = "String")]
pub struct UserId(String);

crate::newtype::string_newtype!(UserId: InvalidUserId, Display);

/// Why a string is not a [`UserId`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a user id (expected usr_<id>)")]
pub struct InvalidUserId;

/// Random characters in a generated id.
const GENERATED_LEN: usize = 16;
/// At most this many characters after `usr_`.
const MAX_LEN: usize = 64;

impl UserId {
    /// `usr_` followed by 1 to 64 lowercase ASCII letters and digits.
    pub fn parse(s: &str) -> Result<Self, InvalidUserId> {
        let rest = s.strip_prefix("usr_").ok_or(InvalidUserId)?;
        if crate::newtype::lower_alnum(rest, MAX_LEN) {
            Ok(Self(s.to_owned()))
        } else {
            Err(InvalidUserId)
        }
    }

    /// A new random id.
    pub fn generate(ids: &dyn Ids) -> Self {
        Self(format!(
            "usr_{}",
            ids.token(GENERATED_LEN).to_ascii_lowercase()
        ))
    }

    /// The workspace owner created with the workspace.
    pub fn owner() -> Self {
        Self("usr_owner".into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemIds;

    #[test]
    fn a_user_id_round_trips_through_parse_display_and_serde_as_the_same_string() {
        for s in ["usr_owner", "usr_0a1b2c3d4e5f6g7h", "usr_x"] {
            let id = UserId::parse(s).unwrap();
            assert_eq!(id.to_string(), s);
            let json = serde_json::to_string(&id).unwrap();
            assert_eq!(json, format!("\"{s}\""));
            assert_eq!(serde_json::from_str::<UserId>(&json).unwrap(), id);
        }
        let generated = UserId::generate(&SystemIds);
        assert_eq!(UserId::parse(generated.as_str()), Ok(generated));
    }

    #[test]
    fn a_malformed_user_id_is_rejected_by_parse_and_by_serde() {
        let long = format!("usr_{}", "a".repeat(65));
        for bad in [
            "",
            "usr_",
            "owner",
            "USR_owner",
            "usr_Owner",
            "usr_own-er",
            "usr_own er",
            "usr_ownér",
            "key_0a1b2c3d",
            long.as_str(),
        ] {
            assert_eq!(UserId::parse(bad), Err(InvalidUserId), "{bad:?}");
            let json = serde_json::to_string(bad).unwrap();
            assert!(serde_json::from_str::<UserId>(&json).is_err(), "{bad:?}");
        }
        assert!(UserId::parse(&format!("usr_{}", "a".repeat(64))).is_ok());
    }
}
