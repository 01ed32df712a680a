//! The read side's storage port ([`crate::read::ProjectionStore`]): checkpoints and the shipped
//! read models' tables.

#![allow(clippy::panic, clippy::unwrap_used, clippy::expect_used)]

use super::*;

/// Checkpoints start at 0, are kept per projection, and never move back.
pub async fn checkpoints_never_move_back<S: crate::read::ProjectionStore>(store: S) {
    assert_eq!(store.checkpoint("a").await.unwrap(), 0);
    store.save_checkpoint("a", 5).await.unwrap();
    store.save_checkpoint("a", 3).await.unwrap();
    assert_eq!(
        store.checkpoint("a").await.unwrap(),
        5,
        "a checkpoint moved back"
    );
    assert_eq!(store.checkpoint("b").await.unwrap(), 0);
    store.apply_read_changes("b", 9, Vec::new()).await.unwrap();
    assert_eq!(store.checkpoint("b").await.unwrap(), 9);
    assert_eq!(store.checkpoint("a").await.unwrap(), 5);
}

/// The feed head is 0 for an empty store and then the feed position of the newest event,
/// whether or not a reader has read the feed since.
pub async fn the_feed_head_is_the_newest_feed_position<S>(store: S)
where
    S: EventStore + crate::read::ProjectionStore,
{
    assert_eq!(store.feed_head().await.unwrap(), 0, "empty store");
    let a = stream(AggregateKind::User, "head-a");
    store
        .append(batch(vec![append(
            &a,
            ExpectedVersion::NoStream,
            vec![event(1), event(2)],
        )]))
        .await
        .unwrap();
    // Not read yet: a store that numbers the feed lazily counts these all the same.
    assert_eq!(store.feed_head().await.unwrap(), 2);
    store
        .append(batch(vec![append(
            &a,
            ExpectedVersion::Exact(2),
            vec![event(3)],
        )]))
        .await
        .unwrap();
    let newest = store.read_feed(0, 100).await.unwrap();
    let newest = newest.last().unwrap().feed_position;
    assert_eq!(store.feed_head().await.unwrap(), newest);
}

fn read_fixture() -> Vec<crate::read::ReadChange> {
    use crate::domain::code::Issued;
    use crate::ids::{CodeId, OrgId, UserId};
    use crate::read::{AuditEntry, DeliveryState, LinkRow, ReadChange};
    let org = OrgId::new("org-1").unwrap();
    let ada = UserId::new("ada").unwrap();
    let code = |n: u32| CodeId::new(format!("code-{n}")).unwrap().reference();
    let issued = |n: i64| {
        Issued::new(
            ada.clone(),
            org.clone(),
            crate::secret::Secret::presented(format!("secret-{n}-of-some-length-000000")).digest(),
            at() + chrono::Duration::seconds(n),
            chrono::Duration::hours(1),
            2,
            1,
            5,
        )
    };
    let audit = |position: u64, stream: &StreamId, version: u64| {
        ReadChange::Audit(AuditEntry::new(
            position,
            stream.clone(),
            version,
            format!("test.event.{position}"),
            at() + chrono::Duration::seconds(position as i64),
            json!({ "n": position }),
        ))
    };
    let org_stream = StreamId::org(&org);
    let user_stream = StreamId::user(&ada);
    let code_stream = |n: u32| StreamId::new(AggregateKind::Code, code(n).as_str()).unwrap();
    let owner = |stream: &StreamId, user: Option<&UserId>| ReadChange::Owner {
        stream: stream.clone(),
        user_id: user.cloned(),
        org_id: org.clone(),
    };
    vec![
        owner(&org_stream, None),
        audit(1, &org_stream, 1),
        owner(&user_stream, Some(&ada)),
        audit(2, &user_stream, 1),
        owner(&code_stream(1), Some(&ada)),
        audit(3, &code_stream(1), 1),
        ReadChange::LinkIssued {
            row: LinkRow::new(code(1), issued(3), DeliveryState::Requested, None, 0),
            feed_position: 3,
        },
        audit(4, &code_stream(1), 2),
        ReadChange::LinkDelivered {
            code: code(1),
            state: DeliveryState::Sent,
            failure: None,
            feed_position: 4,
        },
        audit(5, &code_stream(1), 3),
        ReadChange::LinkCheckFailed {
            code: code(1),
            feed_position: 5,
        },
        audit(6, &code_stream(1), 4),
        ReadChange::LinkCheckFailed {
            code: code(1),
            feed_position: 6,
        },
        owner(&code_stream(2), Some(&ada)),
        audit(7, &code_stream(2), 1),
        ReadChange::LinkIssued {
            row: LinkRow::new(code(2), issued(7), DeliveryState::Returned, None, 0),
            feed_position: 7,
        },
        audit(8, &code_stream(2), 2),
        ReadChange::LinkEnded {
            code: code(2),
            feed_position: 8,
        },
        owner(&code_stream(3), Some(&ada)),
        audit(9, &code_stream(3), 1),
        ReadChange::LinkIssued {
            row: LinkRow::new(code(3), issued(9), DeliveryState::Returned, None, 0),
            feed_position: 9,
        },
        owner(&code_stream(4), Some(&ada)),
        audit(10, &code_stream(4), 1),
        ReadChange::LinkIssued {
            row: LinkRow::new(code(4), issued(10), DeliveryState::Requested, None, 0),
            feed_position: 10,
        },
        audit(11, &code_stream(4), 2),
        ReadChange::LinkDelivered {
            code: code(4),
            state: DeliveryState::Failed,
            failure: Some(crate::domain::DeliveryFailure::Rejected),
            feed_position: 11,
        },
    ]
}

async fn read_snapshot<S: crate::read::ProjectionStore>(
    store: &S,
) -> (Vec<crate::read::LinkRow>, Vec<u64>, Vec<u64>) {
    use crate::ids::{OrgId, UserId};
    use crate::read::AuditScope;
    let ada = UserId::new("ada").unwrap();
    let rows = store.link_rows(&ada).await.unwrap();
    let user = AuditScope::User(ada);
    let org = AuditScope::Org(OrgId::new("org-1").unwrap());
    let mut positions = Vec::new();
    let mut before = None;
    loop {
        let page = store.audit_page(&user, before, 2).await.unwrap();
        if page.is_empty() {
            break;
        }
        positions.extend(page.iter().map(|entry| entry.feed_position));
        before = page.last().map(|entry| entry.feed_position);
    }
    let whole = store.audit_page(&org, None, 100).await.unwrap();
    (
        rows,
        positions,
        whole.iter().map(|e| e.feed_position).collect(),
    )
}

/// Applying read-model changes is idempotent by feed position: the same batch again, or an old
/// batch after newer ones, leaves the tables as applying each once in order.
pub async fn read_changes_apply_once_whatever_the_repeats<S: crate::read::ProjectionStore>(
    store: S,
) {
    use crate::read::DeliveryState;
    let changes = read_fixture();
    store
        .apply_read_changes("read", 11, changes.clone())
        .await
        .unwrap();
    let once = read_snapshot(&store).await;
    let (rows, user_trail, org_trail) = &once;
    let reference = |n: u32| {
        crate::ids::CodeId::new(format!("code-{n}"))
            .unwrap()
            .reference()
            .as_str()
            .to_owned()
    };
    let listed: Vec<(
        String,
        DeliveryState,
        Option<crate::domain::DeliveryFailure>,
        u32,
    )> = rows
        .iter()
        .map(|row| {
            (
                row.code.as_str().to_owned(),
                row.delivery,
                row.failure,
                row.failed_checks,
            )
        })
        .collect();
    assert_eq!(
        listed,
        [
            (
                reference(4),
                DeliveryState::Failed,
                Some(crate::domain::DeliveryFailure::Rejected),
                0
            ),
            (reference(3), DeliveryState::Returned, None, 0),
            (reference(1), DeliveryState::Sent, None, 2)
        ],
        "link rows by reference: newest first, ended codes left out, a failed delivery kept \
         with why, checks counted"
    );
    assert_eq!(
        user_trail,
        &[11, 10, 9, 8, 7, 6, 5, 4, 3, 2],
        "user trail, newest first"
    );
    assert_eq!(
        org_trail,
        &[11, 10, 9, 8, 7, 6, 5, 4, 3, 2, 1],
        "org trail, newest first"
    );
    // At least once: everything again, then the first half again.
    store
        .apply_read_changes("read", 11, changes.clone())
        .await
        .unwrap();
    store
        .apply_read_changes("read", 4, changes[..9].to_vec())
        .await
        .unwrap();
    assert_eq!(
        read_snapshot(&store).await,
        once,
        "a repeated change applied twice"
    );
    assert_eq!(store.checkpoint("read").await.unwrap(), 11);
}
