//! Time by the store's clock. A link's lifetime is measured from its issuance; if nodes took
//! "now" from their own clocks, a node running two hours fast would issue links that correct
//! nodes refuse for two hours and then accept until three hours after issuance. So every node
//! measures its clock's offset to the store's clock (a store with
//! [`crate::store::Capabilities::store_time`]) — again every [`REMEASURE`] — and tells time as
//! its own clock plus that offset: whatever one node's clock says, issuance, expiry and every
//! other rule are judged by one clock.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};

use super::PasskeyLinks;
use crate::error::Error;
use crate::ports::authorizer::Authorizer;
use crate::ports::clock::{Clock, truncate_to_micros};
use crate::ports::notifier::Notifier;
use crate::ports::random::RandomSource;
use crate::ports::relying_party::RelyingParty;
use crate::store::EventStore;

/// How often a node measures its offset to the store's clock again (clocks drift slowly; a
/// stepped clock is caught within this).
pub const REMEASURE: Duration = Duration::from_secs(30);

/// The last measured offset of this node's clock to the store's.
#[derive(Debug, Default)]
pub(super) struct StoreClock {
    measured: Mutex<Option<(Instant, chrono::Duration)>>,
}

impl StoreClock {
    fn offset(&self) -> Option<(Instant, chrono::Duration)> {
        *self
            .measured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn set(&self, offset: chrono::Duration) {
        *self
            .measured
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Some((Instant::now(), offset));
    }
}

impl<S, N, A, C, R, P> PasskeyLinks<S, N, A, C, R, P>
where
    S: EventStore,
    N: Notifier,
    A: Authorizer,
    C: Clock,
    R: RandomSource,
    P: RelyingParty,
{
    /// Now, by the store's clock (this node's clock plus its last measured offset).
    pub(super) fn now(&self) -> DateTime<Utc> {
        let offset = self
            .store_clock
            .offset()
            .map_or_else(chrono::Duration::zero, |(_, offset)| offset);
        truncate_to_micros(self.clock.now() + offset)
    }

    /// The offset of this node's clock to the store's, as last measured (`None`: not measured,
    /// or the store has no clock to measure against).
    pub fn clock_offset(&self) -> Option<chrono::Duration> {
        self.store_clock.offset().map(|(_, offset)| offset)
    }

    /// Measures the offset to the store's clock if it is due (never measured, or older than
    /// [`REMEASURE`]); nothing for a store without a clock, or with the check turned off.
    ///
    /// # Errors
    /// The store could not be asked and no offset was ever measured: time cannot be told.
    pub(super) async fn sync_clock(&self) -> Result<(), Error> {
        if !self.config.store_clock() || !self.store.capabilities().store_time {
            return Ok(());
        }
        let last = self.store_clock.offset();
        if last.is_some_and(|(at, _)| at.elapsed() < REMEASURE) {
            return Ok(());
        }
        let asked = Instant::now();
        let local = self.clock.now();
        let store = match self.store.store_time().await {
            Ok(store) => store,
            // A passing failure: keep telling time by the last offset.
            Err(_) if last.is_some() => return Ok(()),
            Err(err) => return Err(err.into()),
        };
        // The store read its clock about halfway through the round trip.
        let half = chrono::Duration::from_std(asked.elapsed() / 2).unwrap_or_default();
        let offset = store - (local + half);
        #[cfg(feature = "tracing")]
        if offset.abs() > self.config.policy().clock_skew_tolerance() {
            tracing::warn!(
                offset_ms = offset.num_milliseconds(),
                "this node's clock is off the store's by more than the tolerance; telling time \
                 by the store's (fix the node's time synchronization)"
            );
        }
        self.store_clock.set(offset);
        Ok(())
    }
}
