//! Names people give things: workspaces, destinations, API keys.
//!
//! A name is shown in the console, the audit log, CLI output and notification mails, so it
//! must read as what it is: 1 to 100 characters after trimming, and none of the characters
//! that hide or reorder text — C0 and C1 controls (NUL, newline, escape, ...), the
//! bidirectional embeddings, overrides and isolates (U+202A–U+202E, U+2066–U+2069) and marks
//! (U+200E, U+200F, U+061C), invisible spaces and joiners (U+200B, U+2060–U+2064, U+FEFF)
//! and the line and paragraph separators (U+2028, U+2029). The zero-width (non-)joiners
//! U+200C and U+200D stay allowed: Persian and Indic scripts and emoji sequences need them.

use std::fmt;

/// A validated name. Built only by [`Name::parse`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Name(String);

/// Why a name was refused; the caller names the field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum InvalidName {
    #[error("must be 1 to {} characters", Name::MAX_CHARS)]
    Length,
    #[error("must not contain control, bidirectional-override or invisible characters (found U+{0:04X})")]
    Character(u32),
}

impl Name {
    pub const MAX_CHARS: usize = 100;

    /// Trims `s` and checks it.
    pub fn parse(s: &str) -> Result<Self, InvalidName> {
        let s = s.trim();
        if s.is_empty() || s.chars().count() > Self::MAX_CHARS {
            return Err(InvalidName::Length);
        }
        if let Some(c) = s.chars().find(|&c| forbidden(c)) {
            return Err(InvalidName::Character(u32::from(c)));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

impl fmt::Display for Name {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn forbidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{061C}'
                | '\u{200B}'
                | '\u{200E}'
                | '\u{200F}'
                | '\u{2028}'
                | '\u{2029}'
                | '\u{202A}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{2069}'
                | '\u{FEFF}'
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_trimmed_and_kept_as_written() {
        assert_eq!(
            Name::parse("  Meta (prod) ").unwrap().as_str(),
            "Meta (prod)"
        );
        assert_eq!(
            Name::parse("Café 東京 👩‍💻").unwrap().as_str(),
            "Café 東京 👩‍💻"
        );
        assert_eq!(Name::parse("می‌خواهم").unwrap().as_str(), "می‌خواهم");
    }

    #[test]
    fn empty_and_overlong_names_are_refused() {
        assert_eq!(Name::parse("   "), Err(InvalidName::Length));
        assert_eq!(Name::parse(&"x".repeat(101)), Err(InvalidName::Length));
        assert!(Name::parse(&"é".repeat(100)).is_ok());
    }

    #[test]
    fn control_bidi_and_invisible_characters_are_refused() {
        for c in [
            '\0', '\u{7}', '\n', '\u{1B}', '\u{7F}', '\u{85}', '\u{9B}', '\u{202A}', '\u{202E}',
            '\u{2066}', '\u{2069}', '\u{200B}', '\u{200E}', '\u{200F}', '\u{061C}', '\u{2028}',
            '\u{2060}', '\u{FEFF}',
        ] {
            let name = format!("Invoice{c}gpj.exe");
            assert_eq!(
                Name::parse(&name),
                Err(InvalidName::Character(u32::from(c))),
                "U+{:04X}",
                u32::from(c)
            );
        }
    }
}
