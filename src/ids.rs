//! Typed identifiers and stream identity.
//!
//! Ids arrive from requests and from storage, so every constructor validates: 1 to
//! [`MAX_ID_LEN`] characters, no control characters, no Unicode format characters (general
//! category Cf: bidi overrides and isolates, zero-width characters, the BOM — they make two ids
//! look alike in a log or an admin UI), and no whitespace. An invalid id is a typed [`IdError`],
//! never a panic.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

/// Longest accepted id, in characters (ZITADEL accepts ids up to 200 characters).
pub const MAX_ID_LEN: usize = 200;

/// Why a string was refused as an id.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// The id is empty.
    #[error("{kind} id is missing")]
    Empty {
        /// Which id (`org`, `user`, `code`).
        kind: &'static str,
    },
    /// The id is longer than [`MAX_ID_LEN`] characters.
    #[error("{kind} id is longer than {max} characters")]
    TooLong {
        /// Which id.
        kind: &'static str,
        /// The limit.
        max: usize,
    },
    /// The id contains a control, format (Unicode Cf) or whitespace character.
    #[error("{kind} id contains a control, invisible or whitespace character")]
    BadCharacter {
        /// Which id.
        kind: &'static str,
    },
}

fn validate(kind: &'static str, value: &str) -> Result<(), IdError> {
    if value.is_empty() {
        return Err(IdError::Empty { kind });
    }
    // Byte length bounds the character count from above: count only when it could be too long.
    if value.len() > MAX_ID_LEN && value.chars().count() > MAX_ID_LEN {
        return Err(IdError::TooLong {
            kind,
            max: MAX_ID_LEN,
        });
    }
    if value.chars().any(|c| {
        c.is_control()
            || c.is_whitespace()
            || (!c.is_ascii() && c.general_category() == GeneralCategory::Format)
    }) {
        return Err(IdError::BadCharacter { kind });
    }
    Ok(())
}

macro_rules! typed_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal) => {
        $(#[$doc])*
        ///
        /// Cloning shares the text: ids are copied into many events, states and streams.
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Validates and wraps an id.
            ///
            /// # Errors
            /// [`IdError`] when the id is empty, too long or holds control/whitespace characters.
            pub fn new(value: impl Into<String>) -> Result<Self, IdError> {
                let value = value.into();
                validate($kind, &value)?;
                Ok(Self(value.into()))
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }

        // Stored events are untrusted input too: deserializing validates.
        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let raw = String::deserialize(deserializer)?;
                Self::new(raw).map_err(serde::de::Error::custom)
            }
        }
    };
}

typed_id!(
    /// Id of an organization (the resource owner of its users and their codes).
    OrgId,
    "org"
);
typed_id!(
    /// Id of a user (human or machine).
    UserId,
    "user"
);
typed_id!(
    /// Id of one passwordless init code (one registration link).
    CodeId,
    "code"
);
typed_id!(
    /// Id of one passkey of a user (ZITADEL's `passkeyId`), fixed when its registration starts.
    PasskeyId,
    "passkey"
);

impl CodeId {
    /// A one-way reference to this code for third parties and logs: notifier idempotency keys,
    /// message ids, tracing fields. The code id itself is confidential like the link (with it
    /// and the user id anyone could burn the code with wrong guesses), so it never leaves the
    /// process except inside the link.
    pub fn reference(&self) -> CodeRef {
        use sha2::{Digest, Sha256};
        let digest = Sha256::new()
            .chain_update(b"passkey-links code reference v1\0")
            .chain_update(self.0.as_bytes())
            .finalize();
        CodeRef(digest.iter().take(16).map(|b| format!("{b:02x}")).collect())
    }
}

/// A derived reference to a code (see [`CodeId::reference`]): 32 hex digits.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct CodeRef(String);

impl CodeRef {
    /// The reference as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// A reference as its text (32 lowercase hex digits), e.g. from an admin screen.
    ///
    /// # Errors
    /// [`IdError`] for anything else.
    pub fn parse(text: &str) -> Result<Self, IdError> {
        let ok = text.len() == 32
            && text
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(Self(text.to_owned()))
        } else {
            Err(IdError::BadCharacter {
                kind: "code reference",
            })
        }
    }
}

impl fmt::Display for CodeRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The kind of an aggregate, i.e. the stream type. These strings are a storage format: never
/// rename them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[non_exhaustive]
pub enum AggregateKind {
    /// An organization stream (`org`).
    #[serde(rename = "org")]
    Org,
    /// A user stream (`user`).
    #[serde(rename = "user")]
    User,
    /// A passwordless init code stream (`passwordless_init_code`).
    #[serde(rename = "passwordless_init_code")]
    Code,
    /// A passkey credential-id claim stream (`passkey_credential`), one per credential id.
    #[serde(rename = "passkey_credential")]
    Credential,
}

impl AggregateKind {
    /// Every kind, for iteration.
    pub const ALL: [AggregateKind; 4] = [Self::Org, Self::User, Self::Code, Self::Credential];

    /// The stored stream type name.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Org => "org",
            Self::User => "user",
            Self::Code => "passwordless_init_code",
            Self::Credential => "passkey_credential",
        }
    }

    /// Parses a stored stream type name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == name)
    }
}

impl fmt::Display for AggregateKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The identity of one event stream: aggregate kind plus aggregate id. Its fields are private so
/// that every stream id went through validation.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct StreamId {
    kind: AggregateKind,
    /// Shared with the typed id it was made from: a stream id is cloned into every batch, cache
    /// entry and read.
    id: Arc<str>,
}

impl Serialize for StreamId {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut stream = serializer.serialize_struct("StreamId", 2)?;
        stream.serialize_field("kind", &self.kind)?;
        stream.serialize_field("id", &*self.id)?;
        stream.end()
    }
}

impl<'de> Deserialize<'de> for StreamId {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            kind: AggregateKind,
            id: String,
        }
        let raw = Raw::deserialize(deserializer)?;
        Self::new(raw.kind, raw.id).map_err(serde::de::Error::custom)
    }
}

impl StreamId {
    /// A stream of any kind; the id is validated like every other id.
    ///
    /// # Errors
    /// [`IdError`] for an empty, oversized or control-character id.
    pub fn new(kind: AggregateKind, id: impl Into<String>) -> Result<Self, IdError> {
        let id = id.into();
        validate(kind.as_str(), &id)?;
        Ok(Self {
            kind,
            id: id.into(),
        })
    }

    /// The aggregate kind (stream type).
    pub fn kind(&self) -> AggregateKind {
        self.kind
    }

    /// The aggregate id within its kind.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// A stream from an id that is valid by construction (e.g. a hex digest).
    pub(crate) fn from_valid(kind: AggregateKind, id: &str) -> Self {
        Self {
            kind,
            id: id.into(),
        }
    }

    /// The stream of an organization.
    pub fn org(id: &OrgId) -> Self {
        Self {
            kind: AggregateKind::Org,
            id: id.0.clone(),
        }
    }

    /// The stream of a user.
    pub fn user(id: &UserId) -> Self {
        Self {
            kind: AggregateKind::User,
            id: id.0.clone(),
        }
    }

    /// The stream of a passwordless init code.
    pub fn code(id: &CodeId) -> Self {
        Self {
            kind: AggregateKind::Code,
            id: id.0.clone(),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind, self.id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_reject_empty_long_and_control_characters() {
        assert_eq!(UserId::new(""), Err(IdError::Empty { kind: "user" }));
        assert_eq!(
            OrgId::new("x".repeat(MAX_ID_LEN + 1)),
            Err(IdError::TooLong {
                kind: "org",
                max: MAX_ID_LEN
            })
        );
        assert_eq!(
            CodeId::new("a\nb"),
            Err(IdError::BadCharacter { kind: "code" })
        );
        assert!(UserId::new("x".repeat(MAX_ID_LEN)).is_ok());
        // Characters, not bytes: 200 two-byte characters are fine, 201 are not.
        assert!(UserId::new("é".repeat(MAX_ID_LEN)).is_ok());
        assert!(UserId::new("é".repeat(MAX_ID_LEN + 1)).is_err());
    }

    #[test]
    fn ids_reject_invisible_and_surrounding_whitespace() {
        for bad in [
            "ada\u{202E}",
            "\u{2066}ada\u{2069}",
            "a\u{2067}b",
            "a\u{2068}b",
            "a\u{200B}b",
            "a\u{200C}b",
            "a\u{200D}b",
            "\u{FEFF}ada",
            "a\u{00AD}b",
            "a\u{061C}b",
            "a\u{E0001}b",
            " ada",
            "ada ",
            "ada\u{00A0}",
            "\u{3000}ada",
            "a\tb",
        ] {
            assert_eq!(
                UserId::new(bad),
                Err(IdError::BadCharacter { kind: "user" }),
                "{bad:?}"
            );
        }
        for good in ["ada", "Zoë", "鍵-1", "user_7.x~y"] {
            assert!(UserId::new(good).is_ok(), "{good:?}");
        }
    }

    #[test]
    fn code_references_are_stable_one_way_and_distinct() {
        let a = CodeId::new("c1").unwrap().reference();
        assert_eq!(a, CodeId::new("c1").unwrap().reference());
        assert_ne!(a, CodeId::new("c2").unwrap().reference());
        assert_eq!(a.as_str().len(), 32);
        assert!(!a.as_str().contains("c1"));
    }

    #[test]
    fn deserializing_validates() {
        let bad: Result<UserId, _> = serde_json::from_str("\"\"");
        assert!(bad.is_err());
        let good: UserId = serde_json::from_str("\"u1\"").unwrap();
        assert_eq!(good.as_str(), "u1");
    }

    #[test]
    fn aggregate_kind_names_round_trip() {
        for kind in AggregateKind::ALL {
            assert_eq!(AggregateKind::parse(kind.as_str()), Some(kind));
            let json = serde_json::to_string(&kind).unwrap();
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
        }
    }
}
