//! Issuance policy: lifetime, one live link, rate limit, failed-check cap and secret shape.

use chrono::Duration;

use crate::secret::SecretConfig;

/// Shortest allowed link lifetime.
pub const MIN_LIFETIME: Duration = Duration::minutes(5);
/// Longest allowed link lifetime.
pub const MAX_LIFETIME: Duration = Duration::hours(24);
/// The most issuances a rate limit may allow per window (the user state remembers this many).
pub const MAX_RATE_LIMIT: u32 = 64;
/// The largest accepted clock-skew tolerance.
pub const MAX_CLOCK_SKEW_TOLERANCE: Duration = Duration::minutes(10);

/// A policy setting was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// Lifetime outside [5 minutes, 24 hours].
    #[error("link lifetime must be between 5 minutes and 24 hours")]
    Lifetime,
    /// Rate limit of 0 or above [`MAX_RATE_LIMIT`], or an empty/oversized window.
    #[error("rate limit must allow 1..=64 links per window of 1 second to 7 days")]
    RateLimit,
    /// Failed-check cap of 0 or above 10.
    #[error("the failed-check cap must be between 1 and 10")]
    MaxFailedChecks,
    /// Clock-skew tolerance negative or above [`MAX_CLOCK_SKEW_TOLERANCE`].
    #[error("the clock-skew tolerance must be between 0 and 10 minutes")]
    ClockSkewTolerance,
}

/// Which callers the per-user issuance rate limit applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimitScope {
    /// Authenticated users: self-service and admins (default: limited).
    pub users: bool,
    /// The embedding system itself, e.g. a seeding or migration job (default: not limited).
    pub system: bool,
}

impl Default for RateLimitScope {
    fn default() -> Self {
        Self {
            users: true,
            system: false,
        }
    }
}

/// At most `max` links per user in any `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    max: u32,
    window: Duration,
}

impl RateLimit {
    /// A limit of `max` issuances per `window`.
    ///
    /// # Errors
    /// [`PolicyError::RateLimit`] when `max` is 0 or above [`MAX_RATE_LIMIT`] or the window is
    /// outside 1 second ..= 7 days.
    pub fn new(max: u32, window: Duration) -> Result<Self, PolicyError> {
        if max == 0
            || max > MAX_RATE_LIMIT
            || window < Duration::seconds(1)
            || window > Duration::days(7)
        {
            return Err(PolicyError::RateLimit);
        }
        Ok(Self { max, window })
    }

    /// Links allowed per window.
    pub fn max(&self) -> u32 {
        self.max
    }

    /// The window.
    pub fn window(&self) -> Duration {
        self.window
    }
}

/// How links are issued and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    lifetime: Duration,
    one_live_link: bool,
    rate_limit: Option<RateLimit>,
    max_failed_checks: u32,
    secret: SecretConfig,
    rate_limit_scope: RateLimitScope,
    clock_skew_tolerance: Duration,
    accept_sign_count_regression: bool,
}

impl Default for Policy {
    /// 1 hour lifetime, one live link per user, 5 links per hour for users (not for the system
    /// caller), 3 failed checks, 24 alphanumeric characters, 60 s clock-skew tolerance, logins
    /// with a signature counter that went backwards refused.
    fn default() -> Self {
        Self {
            lifetime: Duration::hours(1),
            one_live_link: true,
            rate_limit: Some(RateLimit {
                max: 5,
                window: Duration::hours(1),
            }),
            max_failed_checks: 3,
            secret: SecretConfig::default(),
            rate_limit_scope: RateLimitScope::default(),
            clock_skew_tolerance: Duration::seconds(60),
            accept_sign_count_regression: false,
        }
    }
}

impl Policy {
    /// Sets the link lifetime.
    ///
    /// # Errors
    /// [`PolicyError::Lifetime`] outside [5 minutes, 24 hours] or with sub-second precision.
    pub fn with_lifetime(mut self, lifetime: Duration) -> Result<Self, PolicyError> {
        if !(MIN_LIFETIME..=MAX_LIFETIME).contains(&lifetime) || lifetime.subsec_nanos() != 0 {
            return Err(PolicyError::Lifetime);
        }
        self.lifetime = lifetime;
        Ok(self)
    }

    /// `true` (default): a new link supersedes the user's earlier unused links. `false`:
    /// ZITADEL's behaviour of many live links.
    pub fn with_one_live_link(mut self, on: bool) -> Self {
        self.one_live_link = on;
        self
    }

    /// Sets or removes (`None`) the per-user rate limit.
    pub fn with_rate_limit(mut self, limit: Option<RateLimit>) -> Self {
        self.rate_limit = limit;
        self
    }

    /// Sets the failed-check cap after which a code is exhausted forever.
    ///
    /// # Errors
    /// [`PolicyError::MaxFailedChecks`] outside 1..=10.
    pub fn with_max_failed_checks(mut self, max: u32) -> Result<Self, PolicyError> {
        if !(1..=10).contains(&max) {
            return Err(PolicyError::MaxFailedChecks);
        }
        self.max_failed_checks = max;
        Ok(self)
    }

    /// Sets the secret shape (validated by [`SecretConfig::new`]).
    pub fn with_secret(mut self, secret: SecretConfig) -> Self {
        self.secret = secret;
        self
    }

    /// Sets which callers the rate limit applies to.
    pub fn with_rate_limit_scope(mut self, scope: RateLimitScope) -> Self {
        self.rate_limit_scope = scope;
        self
    }

    /// Sets how far in this node's future a code's issuance time may lie (other nodes' clocks
    /// run slightly differently) before the code is refused.
    ///
    /// # Errors
    /// [`PolicyError::ClockSkewTolerance`] outside 0 ..= [`MAX_CLOCK_SKEW_TOLERANCE`].
    pub fn with_clock_skew_tolerance(mut self, tolerance: Duration) -> Result<Self, PolicyError> {
        if tolerance < Duration::zero() || tolerance > MAX_CLOCK_SKEW_TOLERANCE {
            return Err(PolicyError::ClockSkewTolerance);
        }
        self.clock_skew_tolerance = tolerance;
        Ok(self)
    }

    /// Which callers the rate limit applies to.
    pub fn rate_limit_scope(&self) -> RateLimitScope {
        self.rate_limit_scope
    }

    /// The clock-skew tolerance.
    pub fn clock_skew_tolerance(&self) -> Duration {
        self.clock_skew_tolerance
    }

    /// The link lifetime.
    pub fn lifetime(&self) -> Duration {
        self.lifetime
    }

    /// Whether a new link supersedes earlier ones.
    pub fn one_live_link(&self) -> bool {
        self.one_live_link
    }

    /// The rate limit, if any.
    pub fn rate_limit(&self) -> Option<RateLimit> {
        self.rate_limit
    }

    /// The failed-check cap.
    pub fn max_failed_checks(&self) -> u32 {
        self.max_failed_checks
    }

    /// The secret shape.
    pub fn secret(&self) -> &SecretConfig {
        &self.secret
    }

    /// Whether a login whose passkey presents a signature counter that did not grow (possibly a
    /// cloned authenticator) is let through — the regression recorded all the same — instead of
    /// refused (the default). Some synced passkey providers are known to misreport counters.
    pub fn with_sign_count_regression_accepted(mut self, accepted: bool) -> Self {
        self.accept_sign_count_regression = accepted;
        self
    }

    /// Whether a login with a counter that went backwards is let through.
    pub fn sign_count_regression_accepted(&self) -> bool {
        self.accept_sign_count_regression
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lifetime_bounds_are_inclusive() {
        let p = Policy::default();
        assert!(p.clone().with_lifetime(Duration::minutes(5)).is_ok());
        assert!(p.clone().with_lifetime(Duration::hours(24)).is_ok());
        assert_eq!(
            p.clone().with_lifetime(Duration::seconds(299)),
            Err(PolicyError::Lifetime)
        );
        assert_eq!(
            p.with_lifetime(Duration::hours(24) + Duration::seconds(1)),
            Err(PolicyError::Lifetime)
        );
    }

    #[test]
    fn rate_limit_bounds() {
        assert!(RateLimit::new(0, Duration::hours(1)).is_err());
        assert!(RateLimit::new(65, Duration::hours(1)).is_err());
        assert!(RateLimit::new(64, Duration::hours(1)).is_ok());
    }
}
