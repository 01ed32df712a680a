//! Validated text values of the user aggregate: names, languages and email addresses.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize};
use unicode_normalization::{UnicodeNormalization, is_nfc};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

use super::DomainError;

/// Longest accepted name (user name, display name, org name, passkey name).
pub const MAX_NAME_LEN: usize = 200;
/// Longest accepted email address (RFC 5321 path limit).
pub const MAX_EMAIL_LEN: usize = 254;

/// Checks a text shown to people (a name, a language tag): 1..=`max` characters, no control or
/// format (Unicode Cf: bidi overrides, zero-width characters, the BOM) characters, no leading or
/// trailing whitespace — the identifier rule, so that a name cannot be spoofed in a list or a
/// notice. Checks `value` as given; [`display_text`] normalises first.
///
/// # Errors
/// [`DomainError::InvalidText`] otherwise.
pub fn validate_text(field: &'static str, value: &str, max: usize) -> Result<(), DomainError> {
    let invisible = |c: char| {
        c.is_control() || (!c.is_ascii() && c.general_category() == GeneralCategory::Format)
    };
    let count = value.chars().count();
    if count == 0 || count > max || value.trim() != value || value.chars().any(invisible) {
        return Err(DomainError::InvalidText { field, max });
    }
    Ok(())
}

/// A text shown to people, as it is stored: normalised to Unicode NFC (so that two spellings of
/// one name are one), then checked by [`validate_text`].
///
/// # Errors
/// [`DomainError::InvalidText`].
pub fn display_text(field: &'static str, value: &str, max: usize) -> Result<String, DomainError> {
    let normalized: String = if is_nfc(value) {
        value.to_owned()
    } else {
        value.nfc().collect()
    };
    validate_text(field, &normalized, max)?;
    Ok(normalized)
}

/// What an erased name (or other personal text) reads as.
pub const ERASED: &str = "(erased)";

/// A syntactically valid email address. Deliberately strict: no whitespace, no control
/// characters, no quoting, no lists — a value that could smuggle a second recipient or a header
/// into a mail is refused.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(std::sync::Arc<str>);

impl Email {
    /// Validates an address.
    ///
    /// # Errors
    /// [`DomainError::InvalidEmail`].
    pub fn parse(value: impl Into<String>) -> Result<Self, DomainError> {
        let value = value.into();
        if value.len() > MAX_EMAIL_LEN {
            return Err(DomainError::InvalidEmail);
        }
        let Some((local, domain)) = value.split_once('@') else {
            return Err(DomainError::InvalidEmail);
        };
        let local_ok = !local.is_empty()
            && local.len() <= 64
            && !local.starts_with('.')
            && !local.ends_with('.')
            && !local.contains("..")
            && local
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-/=?^_`{|}~.".contains(c));
        let domain_ok = domain.contains('.')
            && domain.split('.').all(|label| {
                !label.is_empty()
                    && label.len() <= 63
                    && !label.starts_with('-')
                    && !label.ends_with('-')
                    && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
            });
        if !local_ok || !domain_ok {
            return Err(DomainError::InvalidEmail);
        }
        Ok(Self(value.into()))
    }

    /// What an erased address reads as (a reserved domain: nothing is ever sent there).
    pub fn erased() -> Self {
        Self("erased@erased.invalid".into())
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Email({:?})", self.0)
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Email {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw = String::deserialize(deserializer)?;
        Self::parse(raw).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_identifier_rule_and_are_stored_in_nfc() {
        let name = |value: &str| display_text("name", value, 10);
        for bad in [
            "",
            " Key",
            "Key ",
            "Key\u{202E}1", // right-to-left override
            "Key\u{2066}1", // left-to-right isolate
            "K\u{200B}ey",  // zero-width space
            "\u{FEFF}Key",  // byte-order mark
            "Key\u{0007}",  // control
            "Key\n1",
            "12345678901", // 11 characters
        ] {
            assert!(name(bad).is_err(), "{bad:?}");
        }
        // One name, two spellings: stored as one (NFC).
        assert_eq!(name("Cafe\u{301}").unwrap(), "Caf\u{e9}");
        assert_eq!(name("Caf\u{e9}").unwrap(), "Caf\u{e9}");
        // Length counts characters, after normalisation.
        assert!(name("e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}e\u{301}").is_ok());
        assert!(name("Schlüssel").is_ok());
        assert!(name("鍵 1").is_ok());
    }

    #[test]
    fn emails() {
        for good in ["a@example.com", "first.last+tag@sub.example.org"] {
            assert!(Email::parse(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "a",
            "@example.com",
            "a@",
            "a@localhost",
            "a b@example.com",
            "a@example.com\r\nBcc: x@evil.example",
            "a@example.com,b@evil.example",
            "\"a\"@example.com",
            "a@@example.com",
            "a..b@example.com",
        ] {
            assert_eq!(Email::parse(bad), Err(DomainError::InvalidEmail), "{bad:?}");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(Email::parse(long).is_err());
    }

    #[test]
    fn text() {
        assert!(validate_text("name", "Ada", 10).is_ok());
        assert!(validate_text("name", "", 10).is_err());
        assert!(validate_text("name", "   ", 10).is_err());
        assert!(validate_text("name", "a\u{0}b", 10).is_err());
        assert!(validate_text("name", &"x".repeat(11), 10).is_err());
    }
}
