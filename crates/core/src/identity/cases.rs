//! Table-driven checks shared by the profiles' tests.

use super::common::Outcome;
use super::Field;

/// Checks `normalize` against `(field, raw input, expected value or rejection reason)` cases,
/// naming the case that fails.
pub(super) fn assert_normalizes(
    normalize: impl Fn(Field, &str) -> Outcome,
    cases: &[(Field, &str, Result<&str, &'static str>)],
) {
    for &(field, raw, want) in cases {
        assert_eq!(
            normalize(field, raw),
            want.map(str::to_owned),
            "{field:?} {raw:?}"
        );
    }
}
