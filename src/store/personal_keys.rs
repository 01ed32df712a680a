//! The key store port: one key per user, under which the user's personal data (names, email,
//! passkey names) is sealed before any event or snapshot holding it is written. Keys live
//! outside the event streams, so destroying one erases the data it sealed from every copy of
//! the events at once (crypto-shredding) while the events themselves — ids, versions, expiries,
//! claims, digests — stay and still fold.

use std::fmt;
use std::future::Future;

use super::StoreError;

/// Length of a [`PersonalKey`] in bytes (AES-256).
pub const PERSONAL_KEY_LEN: usize = 32;

/// A user's data key. Its bytes never reach `Debug` output, logs, errors or events.
#[derive(Clone, PartialEq, Eq)]
pub struct PersonalKey([u8; PERSONAL_KEY_LEN]);

impl PersonalKey {
    /// A key of these bytes.
    pub fn new(bytes: [u8; PERSONAL_KEY_LEN]) -> Self {
        Self(bytes)
    }

    /// A key of these bytes, if there are exactly [`PERSONAL_KEY_LEN`] of them.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(Self)
    }

    /// The key's bytes, for the store that keeps them.
    pub fn as_bytes(&self) -> &[u8; PERSONAL_KEY_LEN] {
        &self.0
    }
}

impl fmt::Debug for PersonalKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PersonalKey(<redacted>)")
    }
}

/// What the key store holds for a user that has had a key.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum StoredKey {
    /// The key.
    Key(PersonalKey),
    /// The key was destroyed: what it sealed is unreadable for good, and no key is ever made
    /// for the user again.
    Erased,
}

/// Keeps one key per user, outside the event streams (every [`super::EventStore`] is one).
/// Run `testing::conformance::run_all` (feature `testing`) to check an implementation.
pub trait PersonalKeyStore: Send + Sync {
    /// The user's key: `None` when none was ever made.
    ///
    /// # Errors
    /// [`StoreError::Unavailable`] and the other failure classes.
    fn personal_key(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<Option<StoredKey>, StoreError>> + Send;

    /// Keeps `key` as the user's key unless the user has (or had) one; answers what stands
    /// now — `key`, the key a concurrent writer kept first, or [`StoredKey::Erased`].
    ///
    /// # Errors
    /// As [`PersonalKeyStore::personal_key`].
    fn create_personal_key(
        &self,
        user_id: &str,
        key: PersonalKey,
    ) -> impl Future<Output = Result<StoredKey, StoreError>> + Send;

    /// Destroys the user's key for good (and makes sure none is ever made for the user again),
    /// whether or not the user had one.
    ///
    /// # Errors
    /// As [`PersonalKeyStore::personal_key`].
    fn erase_personal_key(
        &self,
        user_id: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

crate::ports::forward_port!(PersonalKeyStore {
    fn personal_key(&self, user_id: &str) -> impl Future<Output = Result<Option<StoredKey>, StoreError>> + Send;
    fn create_personal_key(&self, user_id: &str, key: PersonalKey) -> impl Future<Output = Result<StoredKey, StoreError>> + Send;
    fn erase_personal_key(&self, user_id: &str) -> impl Future<Output = Result<(), StoreError>> + Send;
});

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_never_shows_its_bytes() {
        let key = PersonalKey::new([0xab; PERSONAL_KEY_LEN]);
        let shown = format!("{key:?} {:?}", StoredKey::Key(key.clone()));
        assert!(!shown.contains("ab") && !shown.contains("171"), "{shown}");
        assert!(shown.contains("redacted"));
        assert_eq!(PersonalKey::from_slice(&[1; 31]), None);
        assert_eq!(
            PersonalKey::from_slice(&[1; 32]),
            Some(PersonalKey::new([1; 32]))
        );
    }
}
