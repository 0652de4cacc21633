//! The Segment batch parser and the pure ingest pipeline: see `tracklayer_fuzz::ingest`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| tracklayer_fuzz::ingest::check(data));
