// Test cases for secrets-rust.yaml (`semgrep --test`). Not compiled. The keys are made up.
pub fn bootstrap_key() -> ApiKey {
    // ruleid: tl-api-key-literal-rust
    ApiKey::parse("tl_ingest_eu_abcdefgh12345678_0123456789abcdefABCDEF0123456789").unwrap()  // pragma: allowlist secret
}

// ruleid: tl-api-key-literal-rust
const ADMIN: &str = "tl_svc_us_q1w2e3r4t5y6u7i8_ZYXWVUTSRQPONMLKJIHGFEDCBA987654";  // pragma: allowlist secret

pub fn prefix(key: &ApiKey) -> String {
    // ok: tl-api-key-literal-rust
    format!("tl_{}_{}_{}", key.kind.as_str(), key.region, key.id)
}

// ok: tl-api-key-literal-rust
const EXAMPLE_PREFIX: &str = "tl_pat_eu_abcdefgh12345678";

#[cfg(test)]
mod tests {
    #[test]
    fn a_key_parses() {
        // ok: tl-api-key-literal-rust
        let key = ApiKey::parse("tl_pat_eu_abcdefgh12345678_0123456789abcdefABCDEF0123456789");  // pragma: allowlist secret
    }
}
