//! Personal data at rest, and its erasure by crypto-shredding.
//!
//! The fields of user events that name a person ([`PERSONAL_FIELDS`]: user name, display name,
//! email, passkey names) — and whole user snapshots — are sealed under a key of that user
//! (AES-256-GCM, a fresh nonce per value, the user id and field name bound in as associated
//! data) before anything is written; the keys live in the store's [`PersonalKeyStore`],
//! outside the streams. Sealed text reads `sealed:v1:` and base64url of nonce, ciphertext and
//! tag, so a dump, a WAL segment or the audit table holds only ciphertext.
//!
//! Erasure destroys the key: every event still decodes and folds (ids, versions, expiries,
//! credential claims and digests were never sealed), with the sealed fields read as
//! [`ERASED`] (an email as [`Email::erased`]). Events written before sealing existed keep their
//! plaintext: erasure does not reach them (README, "Directory sync and personal data").

use std::collections::HashMap;
use std::sync::Mutex;

use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore as _;
use serde_json::Value;

use crate::domain::text::{ERASED, Email};
use crate::store::{PERSONAL_KEY_LEN, PersonalKey, PersonalKeyStore, StoreError, StoredKey};

/// What a sealed value starts with.
pub(crate) const SEALED: &str = "sealed:v1:";

/// Nonce length of AES-GCM.
const NONCE_LEN: usize = 12;

/// The payload fields of each user event type that are sealed: every text a person is named
/// or identified by, or typed themselves. A test fails while a user event type has a text field
/// that is neither listed here nor known to be no personal data.
pub const PERSONAL_FIELDS: &[(&str, &[&str])] = &[
    ("user.human.added", &["userName", "displayName", "email"]),
    ("user.machine.added", &["userName", "name"]),
    ("user.human.email.changed", &["email"]),
    ("user.profile.changed", &["userName", "displayName"]),
    ("user.human.passwordless.token.verified", &["name"]),
    ("user.human.passkey.added", &["name"]),
];

/// The associated data of a snapshot sealed whole.
const SNAPSHOT: &str = "snapshot";

/// The sealed fields of `event_type` (none for other types).
pub(crate) fn personal_fields(event_type: &str) -> &'static [&'static str] {
    PERSONAL_FIELDS
        .iter()
        .find(|(name, _)| *name == event_type)
        .map_or(&[], |(_, fields)| fields)
}

/// Whether `value` is sealed text.
pub(crate) fn is_sealed(value: &Value) -> bool {
    value.as_str().is_some_and(|text| text.starts_with(SEALED))
}

/// Whether any top-level field of `object` is sealed text.
pub(crate) fn holds_sealed(object: &Value) -> bool {
    object
        .as_object()
        .is_some_and(|map| map.values().any(is_sealed))
}

/// A fresh random key (the OS-seeded CSPRNG, never a seeded or derived source).
pub(crate) fn new_key() -> PersonalKey {
    let mut bytes = [0u8; PERSONAL_KEY_LEN];
    rand::rng().fill_bytes(&mut bytes);
    PersonalKey::new(bytes)
}

fn cipher(key: &PersonalKey) -> Aes256Gcm {
    Aes256Gcm::new(&(*key.as_bytes()).into())
}

fn aad(user_id: &str, field: &str) -> Vec<u8> {
    let mut aad = Vec::with_capacity(user_id.len() + field.len() + 1);
    aad.extend_from_slice(user_id.as_bytes());
    aad.push(0);
    aad.extend_from_slice(field.as_bytes());
    aad
}

/// `text`, sealed under `key` for `user_id`'s `field`.
pub(crate) fn seal_text(key: &PersonalKey, user_id: &str, field: &str, text: &str) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    rand::rng().fill_bytes(&mut nonce);
    let aad = aad(user_id, field);
    // AES-GCM refuses only texts beyond 64 GiB.
    let sealed = cipher(key)
        .encrypt(
            &Nonce::from(nonce),
            Payload {
                msg: text.as_bytes(),
                aad: &aad,
            },
        )
        .unwrap_or_default();
    let mut bytes = Vec::with_capacity(NONCE_LEN + sealed.len());
    bytes.extend_from_slice(&nonce);
    bytes.extend_from_slice(&sealed);
    format!("{SEALED}{}", URL_SAFE_NO_PAD.encode(bytes))
}

/// Sealed text, opened; `None` when it is not `user_id`'s `field` under `key`.
fn open_text(key: &PersonalKey, user_id: &str, field: &str, sealed: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(sealed.strip_prefix(SEALED)?).ok()?;
    if bytes.len() < NONCE_LEN {
        return None;
    }
    let (nonce, ciphertext) = bytes.split_at(NONCE_LEN);
    let nonce: [u8; NONCE_LEN] = nonce.try_into().ok()?;
    let aad = aad(user_id, field);
    let plain = cipher(key)
        .decrypt(
            &Nonce::from(nonce),
            Payload {
                msg: ciphertext,
                aad: &aad,
            },
        )
        .ok()?;
    String::from_utf8(plain).ok()
}

/// What an erased `field` reads as.
fn erased(field: &str) -> String {
    if field == "email" {
        Email::erased().as_str().to_owned()
    } else {
        ERASED.to_owned()
    }
}

/// Seals the [`personal_fields`] of a user event's payload.
pub(crate) fn seal_payload(
    key: &PersonalKey,
    user_id: &str,
    event_type: &str,
    payload: &mut Value,
) {
    let Some(map) = payload.as_object_mut() else {
        return;
    };
    for field in personal_fields(event_type) {
        if let Some(value) = map.get_mut(*field)
            && let Some(text) = value.as_str()
            && !text.starts_with(SEALED)
        {
            *value = Value::String(seal_text(key, user_id, field, text));
        }
    }
}

/// How sealed values are opened.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Opening<'a> {
    /// With the user's key.
    Key(&'a PersonalKey),
    /// As erased (the key is destroyed — or not needed: what reads them wants no names).
    Erased,
}

impl<'a> Opening<'a> {
    /// The opening a stored key allows.
    pub(crate) fn of(stored: &'a StoredKey) -> Self {
        match stored {
            StoredKey::Key(key) => Self::Key(key),
            StoredKey::Erased => Self::Erased,
        }
    }
}

/// A sealed value that its key does not open: another user's, or tampered with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("sealed personal data does not open under the user's key")]
pub(crate) struct NotOpened;

/// Opens every sealed top-level field of `object` (a payload, or an audit entry's detail) of
/// `user_id`, in place.
///
/// # Errors
/// [`NotOpened`] when the key does not open one.
pub(crate) fn open_fields(
    opening: Opening<'_>,
    user_id: &str,
    object: &mut Value,
) -> Result<(), NotOpened> {
    let Some(map) = object.as_object_mut() else {
        return Ok(());
    };
    for (field, value) in map.iter_mut() {
        let Some(sealed) = value.as_str().filter(|text| text.starts_with(SEALED)) else {
            continue;
        };
        let opened = match opening {
            Opening::Key(key) => open_text(key, user_id, field, sealed).ok_or(NotOpened)?,
            Opening::Erased => erased(field),
        };
        *value = Value::String(opened);
    }
    Ok(())
}

/// A user's folded state (as JSON), sealed whole.
pub(crate) fn seal_snapshot(key: &PersonalKey, user_id: &str, state: &Value) -> Value {
    Value::String(seal_text(key, user_id, SNAPSHOT, &state.to_string()))
}

/// A sealed snapshot state, opened; `None` when the key does not open it.
pub(crate) fn open_snapshot(key: &PersonalKey, user_id: &str, sealed: &str) -> Option<Value> {
    serde_json::from_str(&open_text(key, user_id, SNAPSHOT, sealed)?).ok()
}

/// Keys at most this many users' keys are remembered by one process.
const KEPT_KEYS: usize = 16_384;

/// The users' keys a process has looked up: a user's cold load needs its key, and it never
/// changes but once (erased). A key erased by another process may be remembered here a while;
/// what this process then opens with it reaches no store (snapshots are sealed, states forget
/// on the erasure event, and audit queries look keys up afresh).
#[derive(Debug, Default)]
pub(crate) struct KeyCache {
    known: Mutex<HashMap<String, StoredKey>>,
}

impl KeyCache {
    fn remembered(&self, user_id: &str) -> Option<StoredKey> {
        self.known
            .lock()
            .unwrap_or_else(|poison| poison.into_inner())
            .get(user_id)
            .cloned()
    }

    /// Remembers what the store holds for the user (as a load read it).
    pub(crate) fn remember(&self, user_id: &str, stored: &StoredKey) {
        let mut known = self
            .known
            .lock()
            .unwrap_or_else(|poison| poison.into_inner());
        if known.len() >= KEPT_KEYS {
            known.clear();
        }
        known.insert(user_id.to_owned(), stored.clone());
    }

    /// The user's key as remembered, else as stored (`None`: never made).
    ///
    /// # Errors
    /// The store's.
    pub(crate) async fn get<S: PersonalKeyStore>(
        &self,
        store: &S,
        user_id: &str,
    ) -> Result<Option<StoredKey>, StoreError> {
        if let Some(stored) = self.remembered(user_id) {
            return Ok(Some(stored));
        }
        let stored = store.personal_key(user_id).await?;
        if let Some(stored) = &stored {
            self.remember(user_id, stored);
        }
        Ok(stored)
    }

    /// The user's key, made now if the user never had one ([`StoredKey::Erased`] once erased):
    /// one store call when not remembered (making a key answers the one that stands).
    ///
    /// # Errors
    /// The store's.
    pub(crate) async fn get_or_create<S: PersonalKeyStore>(
        &self,
        store: &S,
        user_id: &str,
    ) -> Result<StoredKey, StoreError> {
        if let Some(stored) = self.remembered(user_id) {
            return Ok(stored);
        }
        let stored = store.create_personal_key(user_id, new_key()).await?;
        self.remember(user_id, &stored);
        Ok(stored)
    }

    /// Destroys the user's key for good.
    ///
    /// # Errors
    /// The store's.
    pub(crate) async fn erase<S: PersonalKeyStore>(
        &self,
        store: &S,
        user_id: &str,
    ) -> Result<(), StoreError> {
        store.erase_personal_key(user_id).await?;
        self.remember(user_id, &StoredKey::Erased);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(byte: u8) -> PersonalKey {
        PersonalKey::new([byte; PERSONAL_KEY_LEN])
    }

    #[test]
    fn sealed_fields_open_only_for_their_user_field_and_key() {
        let mut payload = json!({
            "orgId": "acme",
            "userName": "ada",
            "displayName": "Ada Lovelace",
            "email": "ada@example.com",
            "emailVerified": true,
        });
        seal_payload(&key(1), "u1", "user.human.added", &mut payload);
        let text = payload.to_string();
        for personal in ["ada", "Lovelace", "example.com"] {
            assert!(!text.contains(personal), "{personal} in {text}");
        }
        assert_eq!(payload["orgId"], "acme", "not personal: stays");
        assert!(holds_sealed(&payload));

        let mut opened = payload.clone();
        open_fields(Opening::Key(&key(1)), "u1", &mut opened).unwrap();
        assert_eq!(opened["email"], "ada@example.com");
        assert_eq!(opened["displayName"], "Ada Lovelace");

        let mut wrong_key = payload.clone();
        assert_eq!(
            open_fields(Opening::Key(&key(2)), "u1", &mut wrong_key),
            Err(NotOpened)
        );
        let mut other_user = payload.clone();
        assert_eq!(
            open_fields(Opening::Key(&key(1)), "u2", &mut other_user),
            Err(NotOpened)
        );
        // A value moved to another field does not open there.
        let mut moved = payload.clone();
        moved["userName"] = payload["displayName"].clone();
        assert_eq!(
            open_fields(Opening::Key(&key(1)), "u1", &mut moved),
            Err(NotOpened)
        );

        let mut erased = payload;
        open_fields(Opening::Erased, "u1", &mut erased).unwrap();
        assert_eq!(erased["email"], Email::erased().as_str());
        assert_eq!(erased["userName"], ERASED);
        assert_eq!(erased["orgId"], "acme");
    }

    #[test]
    fn each_sealing_draws_a_fresh_nonce() {
        let a = seal_text(&key(1), "u1", "email", "ada@example.com");
        let b = seal_text(&key(1), "u1", "email", "ada@example.com");
        assert_ne!(a, b);
    }

    #[test]
    fn a_snapshot_is_sealed_whole() {
        let state = json!({"user_name": "ada", "email": "ada@example.com"});
        let sealed = seal_snapshot(&key(3), "u1", &state);
        assert!(!sealed.to_string().contains("ada"));
        let text = sealed.as_str().unwrap();
        assert_eq!(open_snapshot(&key(3), "u1", text), Some(state));
        assert_eq!(open_snapshot(&key(4), "u1", text), None);
    }
}
