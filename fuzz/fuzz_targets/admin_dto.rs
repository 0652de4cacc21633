//! Admin request bodies of control-plane types: see `tracklayer_fuzz::admin_dto`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracklayer_fuzz::admin_dto::check(data));
