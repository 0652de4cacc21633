//! What every validated string newtype of the domain has besides its `parse`.

/// Gives `$name`, whose `parse(&str) -> Result<$name, $error>` is the only way in,
/// `TryFrom<String>` through `parse`: what `#[serde(try_from = "String")]` calls, so a stored
/// or sent value is checked like any other.
macro_rules! try_from_string {
    ($name:ident: $error:ty) => {
        impl TryFrom<String> for $name {
            type Error = $error;
            fn try_from(s: String) -> Result<Self, Self::Error> {
                Self::parse(&s)
            }
        }
    };
}

pub(crate) use try_from_string;

/// Gives `$name(String)`, whose `parse(&str) -> Result<$name, $error>` is the only way in, the
/// conversions of a validated string: `as_str`, `TryFrom<String>` (`try_from_string!`) and
/// `From<$name> for String` (`#[serde(into = "String")]`). With `Display`, also shows as
/// the string itself: ids are safe to log; an email address is not, so it has no `Display`.
macro_rules! string_newtype {
    ($name:ident: $error:ty) => {
        impl $name {
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        $crate::newtype::try_from_string!($name: $error);

        impl From<$name> for String {
            fn from(v: $name) -> Self {
                v.0
            }
        }
    };
    ($name:ident: $error:ty, Display) => {
        $crate::newtype::string_newtype!($name: $error);

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

pub(crate) use string_newtype;

/// Whether `s` is 1 to `max` lowercase ASCII letters and digits: the unique part of an id.
pub(crate) fn lower_alnum(s: &str, max: usize) -> bool {
    !s.is_empty()
        && s.len() <= max
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
}
