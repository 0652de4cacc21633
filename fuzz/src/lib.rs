//! The properties the fuzz targets assert, one module per target family. A failed property
//! panics, which libFuzzer reports as a crash with the input that caused it.

pub mod admin_dto;
pub mod body;
pub mod consent;
pub mod identity;
pub mod ingest;
pub mod problem;
pub mod saml;

/// A fixed "now" for every target (ingest's received-at, date-of-birth checks).
pub use tracklayer_core::testkit::T0;

/// 64 lowercase hex characters: a SHA-256 digest as destinations receive it.
pub fn is_lower_hex_64(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}
