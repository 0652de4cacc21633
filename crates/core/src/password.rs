//! Console passwords: the rules a new password must meet, and its argon2id verifier.
//!
//! A [`Password`] exists only once it met the rules (12 characters or more, not one of the
//! 10,000 most common passwords); its `Debug` never shows it. Verifiers are argon2id with the
//! OWASP parameters (m = 19 MiB, t = 2, p = 1) in PHC string format, so stored verifiers keep
//! their parameters if these ever change.

use std::fmt;
use std::sync::OnceLock;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier as _, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use serde::{Deserialize, Serialize};

use crate::clock::Ids;

/// The shortest password accepted, in characters.
pub const MIN_PASSWORD_CHARS: usize = 12;
/// The longest, in bytes: argon2 takes any length, but a megabyte of password is an attack.
pub const MAX_PASSWORD_BYTES: usize = 1024;

/// OWASP Password Storage Cheat Sheet, argon2id: 19 MiB of memory, 2 iterations, 1 lane.
const MEMORY_KIB: u32 = 19 * 1024;
const ITERATIONS: u32 = 2;
const LANES: u32 = 1;

/// The bundled list (see its header for source and licence).
const COMMON: &str = include_str!("password/common-passwords.txt");

/// A password that met the rules. Never logged: `Debug` is redacted.
#[derive(Clone)]
pub struct Password(String);

/// Which rule a new password broke: the detail of a 422 naming `password`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum PasswordRule {
    #[error("must be at least 12 characters long")]
    TooShort,
    #[error("must be at most 1024 bytes long")]
    TooLong,
    #[error("is one of the 10,000 most common passwords; choose another")]
    Common,
}

impl Password {
    /// A new password, if it meets the rules. Case does not rescue a common password.
    pub fn new(s: &str) -> Result<Self, PasswordRule> {
        if s.chars().count() < MIN_PASSWORD_CHARS {
            return Err(PasswordRule::TooShort);
        }
        if s.len() > MAX_PASSWORD_BYTES {
            return Err(PasswordRule::TooLong);
        }
        if is_common(s) {
            return Err(PasswordRule::Common);
        }
        Ok(Self(s.to_owned()))
    }

    /// The argon2id verifier of this password, with a fresh random salt.
    pub fn verifier(
        &self,
        ids: &dyn Ids,
    ) -> Result<PasswordVerifier, argon2::password_hash::Error> {
        hash(self.0.as_bytes(), ids)
    }
}

impl fmt::Debug for Password {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

/// Is `s` (lowercased) on the bundled list of common passwords?
pub fn is_common(s: &str) -> bool {
    static SET: OnceLock<std::collections::HashSet<&'static str>> = OnceLock::new();
    let set = SET.get_or_init(|| {
        COMMON
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect()
    });
    set.contains(s.to_lowercase().as_str())
}

/// An argon2id verifier in PHC string format (`$argon2id$v=19$m=19456,t=2,p=1$…`).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PasswordVerifier(String);

impl fmt::Debug for PasswordVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PasswordVerifier(<redacted>)")
    }
}

impl PasswordVerifier {
    /// Does `presented` match? A malformed verifier matches nothing.
    pub fn matches(&self, presented: &str) -> bool {
        PasswordHash::new(&self.0)
            .is_ok_and(|h| argon2().verify_password(presented.as_bytes(), &h).is_ok())
    }

    /// The PHC string, for stores.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A verifier read back from a store.
    pub fn from_stored(s: String) -> Self {
        Self(s)
    }
}

/// Runs one verification against a verifier of a random password, so that signing in to an
/// account that does not exist costs what a wrong password costs. Always false.
pub fn verify_against_dummy(presented: &str) -> bool {
    static DUMMY: OnceLock<Option<PasswordVerifier>> = OnceLock::new();
    let dummy = DUMMY.get_or_init(|| {
        let random = crate::clock::SystemIds.token(32);
        hash(random.as_bytes(), &crate::clock::SystemIds).ok()
    });
    std::hint::black_box(dummy.as_ref().is_some_and(|d| d.matches(presented)));
    false
}

fn argon2() -> Argon2<'static> {
    let params = Params::new(MEMORY_KIB, ITERATIONS, LANES, None).unwrap_or_default();
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

fn hash(password: &[u8], ids: &dyn Ids) -> Result<PasswordVerifier, argon2::password_hash::Error> {
    let mut salt = [0u8; 16];
    ids.fill(&mut salt);
    let salt = SaltString::encode_b64(&salt)?;
    Ok(PasswordVerifier(
        argon2().hash_password(password, &salt)?.to_string(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemIds;

    #[test]
    fn a_password_under_12_characters_is_refused_and_12_are_enough() {
        assert_eq!(
            Password::new("abcdefghij1").unwrap_err(),
            PasswordRule::TooShort
        );
        // Characters, not bytes: eleven two-byte characters are still too short.
        assert_eq!(
            Password::new(&"é".repeat(11)).unwrap_err(),
            PasswordRule::TooShort
        );
        assert!(Password::new("violet-harbor-42").is_ok());
    }

    #[test]
    fn a_password_from_the_common_list_is_refused_in_any_case() {
        for common in [
            "123qweasdzxc",
            "QWERTY123456",
            "leavemealone",
            "1qaz2wsx3edc",
        ] {
            assert_eq!(
                Password::new(common).unwrap_err(),
                PasswordRule::Common,
                "{common}"
            );
        }
    }

    #[test]
    fn the_bundled_list_holds_exactly_the_10000_most_common_passwords() {
        let entries: Vec<_> = COMMON
            .lines()
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        assert_eq!(entries.len(), 10_000);
        assert_eq!(entries[0], "123456");
        assert!(is_common("password") && is_common("dragon"));
    }

    #[test]
    fn a_megabyte_password_is_refused_before_hashing() {
        assert_eq!(
            Password::new(&"x".repeat(MAX_PASSWORD_BYTES + 1)).unwrap_err(),
            PasswordRule::TooLong
        );
    }

    #[test]
    fn a_verifier_is_argon2id_with_owasp_parameters_and_matches_only_its_password() {
        let password = Password::new("violet-harbor-42").unwrap();
        let v = password.verifier(&SystemIds).unwrap();
        assert!(
            v.as_str().starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
            "{}",
            v.as_str()
        );
        assert!(v.matches("violet-harbor-42"));
        assert!(!v.matches("violet-harbor-43"));
        assert!(!PasswordVerifier::from_stored("garbage".into()).matches("violet-harbor-42"));
        // Two verifiers of one password differ (fresh salt).
        assert_ne!(password.verifier(&SystemIds).unwrap(), v);
    }

    #[test]
    fn neither_a_password_nor_its_verifier_shows_in_debug_output() {
        let password = Password::new("violet-harbor-42").unwrap();
        let v = password.verifier(&SystemIds).unwrap();
        let shown = format!("{password:?} {v:?}");
        assert!(
            !shown.contains("violet") && !shown.contains("argon2"),
            "{shown}"
        );
    }

    #[test]
    fn the_dummy_verification_never_matches() {
        assert!(!verify_against_dummy("violet-harbor-42"));
    }
}
