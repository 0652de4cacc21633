//! The consent-signal parser and decision: see `tracklayer_fuzz::consent`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracklayer_fuzz::consent::check(data));
