//! The gzip/deflate body reader: see `tracklayer_fuzz::body`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracklayer_fuzz::body::check(data));
