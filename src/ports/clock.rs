//! The clock port. Timestamps are truncated to microseconds so that every store round-trips
//! them exactly.

use std::sync::{Arc, Mutex};

use chrono::{DateTime, Duration, Timelike, Utc};

/// Tells the time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now(&self) -> DateTime<Utc>;
}

super::forward_port!(Clock {
    fn now(&self) -> DateTime<Utc>;
});

/// Truncates to whole microseconds.
pub fn truncate_to_micros(at: DateTime<Utc>) -> DateTime<Utc> {
    // The sub-second field alone (a leap second's runs past 10⁹ and stays valid): no division
    // of the whole timestamp, and no range limit of a timestamp in nanoseconds.
    // On the UTC date and time themselves: no round trip through an offset.
    at.naive_utc()
        .with_nanosecond(at.nanosecond() - at.nanosecond() % 1_000)
        .map_or(at, |truncated| truncated.and_utc())
}

/// The system clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that moves only when told (tests). Cloning shares the time.
#[derive(Debug, Clone)]
pub struct ManualClock {
    now: Arc<Mutex<DateTime<Utc>>>,
}

impl ManualClock {
    /// A clock standing at `at`.
    pub fn new(at: DateTime<Utc>) -> Self {
        Self {
            now: Arc::new(Mutex::new(at)),
        }
    }

    /// Moves the clock forward (or back, with a negative duration).
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        *now += by;
    }

    /// Sets the clock.
    pub fn set(&self, at: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = at;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{NaiveDate, TimeZone};

    fn at(nanos: u32) -> DateTime<Utc> {
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        Utc.from_utc_datetime(&day.and_hms_nano_opt(23, 59, 59, nanos).unwrap())
    }

    #[test]
    fn truncation_drops_only_what_is_below_a_microsecond() {
        assert_eq!(truncate_to_micros(at(123_456_789)), at(123_456_000));
        assert_eq!(truncate_to_micros(at(123_456_000)), at(123_456_000));
        // A leap second keeps its place; times before 1970 and past the year 2262 (beyond a
        // timestamp in nanoseconds) truncate too.
        assert_eq!(truncate_to_micros(at(1_000_000_999)), at(1_000_000_000));
        for year in [1900, 3000] {
            let day = NaiveDate::from_ymd_opt(year, 1, 1).unwrap();
            let time = Utc.from_utc_datetime(&day.and_hms_nano_opt(0, 0, 0, 999).unwrap());
            assert_eq!(truncate_to_micros(time).timestamp_subsec_nanos(), 0);
            assert_eq!(truncate_to_micros(time).timestamp(), time.timestamp());
        }
    }
}
