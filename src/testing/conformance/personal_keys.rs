//! The users' personal data keys: made once per user (the first writer's key stands), kept
//! apart per user, destroyed for good.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use super::*;
use crate::store::{PERSONAL_KEY_LEN, PersonalKey, StoredKey};

fn key(byte: u8) -> PersonalKey {
    PersonalKey::new([byte; PERSONAL_KEY_LEN])
}

/// A key is made once (the first writer's stands, whoever asks next), each user has their own,
/// and an erased key is gone for good: never answered again, never made again.
pub async fn a_personal_key_is_made_once_and_erased_for_good<S: EventStore>(store: S) {
    assert_eq!(store.personal_key("keys-ada").await.unwrap(), None);
    assert_eq!(
        store.create_personal_key("keys-ada", key(1)).await.unwrap(),
        StoredKey::Key(key(1))
    );
    assert_eq!(
        store.create_personal_key("keys-ada", key(2)).await.unwrap(),
        StoredKey::Key(key(1)),
        "the first key stands"
    );
    assert_eq!(
        store.personal_key("keys-ada").await.unwrap(),
        Some(StoredKey::Key(key(1)))
    );
    assert_eq!(
        store.create_personal_key("keys-bob", key(3)).await.unwrap(),
        StoredKey::Key(key(3)),
        "another user's key"
    );

    store.erase_personal_key("keys-ada").await.unwrap();
    assert_eq!(
        store.personal_key("keys-ada").await.unwrap(),
        Some(StoredKey::Erased)
    );
    assert_eq!(
        store.create_personal_key("keys-ada", key(4)).await.unwrap(),
        StoredKey::Erased,
        "no key is made again after erasure"
    );
    store.erase_personal_key("keys-ada").await.unwrap();
    assert_eq!(
        store.personal_key("keys-ada").await.unwrap(),
        Some(StoredKey::Erased),
        "erasing again changes nothing"
    );
    assert_eq!(
        store.personal_key("keys-bob").await.unwrap(),
        Some(StoredKey::Key(key(3))),
        "another user's key stays"
    );

    // A user erased before any key was made gets none either.
    store.erase_personal_key("keys-cy").await.unwrap();
    assert_eq!(
        store.create_personal_key("keys-cy", key(5)).await.unwrap(),
        StoredKey::Erased
    );
}

/// Writers racing to make a user's first key all get the same one.
pub async fn racing_writers_get_one_personal_key<S: EventStore + Clone + 'static>(store: S) {
    let mut handles = Vec::new();
    for byte in 0..8u8 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store.create_personal_key("keys-race", key(byte + 10)).await
        }));
    }
    let mut made = Vec::new();
    for handle in handles {
        made.push(handle.await.unwrap().unwrap());
    }
    let first = made.first().cloned().unwrap();
    assert!(matches!(first, StoredKey::Key(_)));
    assert!(made.iter().all(|stored| *stored == first), "{made:?}");
}

/// A load of user streams brings each user's key along (erased: [`StoredKey::Erased`]; none
/// made: `None`); other streams bring none.
pub async fn a_load_brings_each_users_personal_key<S: EventStore>(store: S) {
    let (ada, bob, cy) = (
        stream(AggregateKind::User, "keys-load-ada"),
        stream(AggregateKind::User, "keys-load-bob"),
        stream(AggregateKind::User, "keys-load-cy"),
    );
    let code = stream(AggregateKind::Code, "keys-load-ada");
    for s in [&ada, &bob, &cy, &code] {
        store
            .append(batch(vec![append(
                s,
                ExpectedVersion::NoStream,
                vec![event(1)],
            )]))
            .await
            .unwrap();
    }
    store
        .create_personal_key("keys-load-ada", key(21))
        .await
        .unwrap();
    store
        .create_personal_key("keys-load-bob", key(22))
        .await
        .unwrap();
    store.erase_personal_key("keys-load-bob").await.unwrap();
    let reads = load(
        &store,
        &[
            (ada, ReadFrom::Snapshot),
            (bob, ReadFrom::After(0)),
            (cy, ReadFrom::After(0)),
            (code, ReadFrom::After(0)),
        ],
        &[],
        10,
    )
    .await;
    let keys: Vec<_> = reads.iter().map(|read| read.personal_key.clone()).collect();
    assert_eq!(
        keys,
        vec![
            Some(StoredKey::Key(key(21))),
            Some(StoredKey::Erased),
            None,
            None
        ]
    );
    assert_eq!(reads[0].events.len(), 1, "the events as well");
}
