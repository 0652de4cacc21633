//! The SAML ACS input (`SAMLResponse`): see `tracklayer_fuzz::saml`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracklayer_fuzz::saml::check(data));
