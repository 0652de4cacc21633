//! Every identifier normalizer of the LinkedIn profile: see `tracklayer_fuzz::identity`.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tracklayer_core::identity::Profile;

fuzz_target!(|data: &[u8]| tracklayer_fuzz::identity::check(Profile::LinkedIn, data));
