//! Logging the store failures behind error responses: every answer made
//! from an [`OAuthError`] with a [`cause`](OAuthError::cause) goes through
//! [`report`]. During an outage every request that needs the store fails the
//! same way, so "store unavailable" is logged for the first, then once per
//! interval with how many were not logged (docs/decisions.md,
//! "Principles").

use gatehouse_oauth::error::{ErrorCode, OAuthError};
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

/// At most one "store unavailable" log line per this many seconds.
const OUTAGE_LOG_INTERVAL_SECS: i64 = 10;

static OUTAGE_LOG: LogThrottle = LogThrottle::new(OUTAGE_LOG_INTERVAL_SECS);

/// Admits one event per interval; counts the ones it holds back.
struct LogThrottle {
    interval: i64,
    last: AtomicI64,
    held: AtomicU64,
}

impl LogThrottle {
    const fn new(interval: i64) -> Self {
        LogThrottle {
            interval,
            last: AtomicI64::new(i64::MIN),
            held: AtomicU64::new(0),
        }
    }

    /// `Some(events held back since the last admitted one)` if this event
    /// may be logged at `now` (Unix seconds), `None` if it is held back.
    fn admit(&self, now: i64) -> Option<u64> {
        let last = self.last.load(Ordering::Relaxed);
        if now.saturating_sub(last) >= self.interval
            && self
                .last
                .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            return Some(self.held.swap(0, Ordering::Relaxed));
        }
        self.held.fetch_add(1, Ordering::Relaxed);
        None
    }
}

/// Logs the store failure behind `e`, if there is one.
pub fn report(e: &OAuthError) {
    let Some(cause) = &e.cause else {
        return;
    };
    // An outage is `temporarily_unavailable`; anything else the store
    // failed at is a `server_error`.
    if e.code == ErrorCode::TemporarilyUnavailable {
        if let Some(suppressed) = OUTAGE_LOG.admit(gatehouse_oauth::clock::system_now()) {
            tracing::error!(error = %cause, suppressed, "store unavailable");
        }
    } else {
        tracing::error!(error = %cause, "store failure");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_logged_once_per_interval_with_the_count_held_back() {
        let t = LogThrottle::new(10);
        assert_eq!(t.admit(100), Some(0));
        assert_eq!(t.admit(101), None);
        assert_eq!(t.admit(109), None);
        assert_eq!(t.admit(110), Some(2));
        assert_eq!(t.admit(110), None);
        assert_eq!(t.admit(125), Some(1));
    }
}
