//! Ingest errors to problem+json: see `tracklayer_fuzz::problem`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracklayer_fuzz::problem::check(data));
