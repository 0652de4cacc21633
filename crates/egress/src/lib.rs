//! The Egress port over reqwest, with an SSRF guard.
