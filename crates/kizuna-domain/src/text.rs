//! Free text that may carry patient information: post bodies and personal or
//! patient names. These types are built only through `parse` (so length and
//! emptiness rules hold everywhere) and their `Debug` never shows the content,
//! so a stray `{:?}` in a log line or a panic cannot leak it.

use serde::{Deserialize, Deserializer, Serialize};
use std::fmt;

/// Largest post body, in bytes of UTF-8.
pub const MAX_BODY_BYTES: usize = 16 * 1024;
/// Largest display name (person, patient, group, facility), in bytes of UTF-8.
pub const MAX_NAME_BYTES: usize = 200;

/// Why a piece of text was refused. Carries no part of the text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TextError {
    /// Empty, or only white space.
    #[error("must not be empty")]
    Empty,
    /// Longer than the limit (in bytes).
    #[error("longer than {limit} bytes")]
    TooLong {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// Contains control characters other than newline and tab.
    #[error("contains control characters")]
    ControlCharacters,
}

macro_rules! redacted_text {
    ($(#[$doc:meta])* $name:ident, $limit:expr, $allow_newlines:expr) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Checks the text and wraps it.
            pub fn parse(text: impl Into<String>) -> Result<Self, TextError> {
                let text = text.into();
                if text.trim().is_empty() {
                    return Err(TextError::Empty);
                }
                if text.len() > $limit {
                    return Err(TextError::TooLong { limit: $limit });
                }
                let bad_control = |c: char| c.is_control() && !($allow_newlines && (c == '\n' || c == '\t' || c == '\r'));
                if text.chars().any(bad_control) {
                    return Err(TextError::ControlCharacters);
                }
                Ok(Self(text))
            }

            /// The text itself. Callers decide where it may go; never into logs.
            pub fn expose(&self) -> &str {
                &self.0
            }

            /// Consumes the wrapper.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, concat!(stringify!($name), "(<redacted {} bytes>)"), self.0.len())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                Self::parse(s).map_err(serde::de::Error::custom)
            }
        }
    };
}

redacted_text!(
    /// The body of a post or an edit. May contain patient information.
    Body,
    MAX_BODY_BYTES,
    true
);
redacted_text!(
    /// A person's, patient's, group's or facility's display name. May identify a patient.
    Name,
    MAX_NAME_BYTES,
    false
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_of_a_body_never_shows_its_content() {
        let body = Body::parse("Tanaka-san: BP 142/90, please prescribe ointment").unwrap();
        let shown = format!("{body:?} {:?}", Some(&body));
        assert!(!shown.contains("Tanaka"));
        assert!(!shown.contains("142"));
        assert!(shown.contains("redacted"));
    }

    #[test]
    fn debug_of_a_name_never_shows_it() {
        let name = Name::parse("山田 花子").unwrap();
        assert!(!format!("{name:?}").contains("山田"));
    }

    #[test]
    fn bodies_are_checked_at_the_boundary() {
        assert_eq!(Body::parse("   "), Err(TextError::Empty));
        assert_eq!(
            Body::parse("x".repeat(MAX_BODY_BYTES + 1)),
            Err(TextError::TooLong {
                limit: MAX_BODY_BYTES
            })
        );
        assert_eq!(Body::parse("a\u{0}b"), Err(TextError::ControlCharacters));
        assert!(Body::parse("line one\nline two\t了解").is_ok());
        assert_eq!(Name::parse("a\nb"), Err(TextError::ControlCharacters));
    }

    #[test]
    fn deserializing_applies_the_same_rules() {
        assert!(serde_json::from_str::<Body>("\"\"").is_err());
        let b: Body = serde_json::from_str("\"ok\"").unwrap();
        assert_eq!(b.expose(), "ok");
    }
}
