//! `[limits]` checked before binding: the listener's connection bounds and
//! the gateway's wait for upstream answers (docs/operations.md "Connections and outbound calls").

use crate::config::{Config, Dur};
use std::time::Duration;

/// Shortest and longest accepted timeout.
const TIMEOUTS: (Duration, Duration) = (Duration::from_millis(100), Duration::from_secs(3600));

fn timeout(key: &str, d: &Dur) -> Result<Duration, String> {
    if d.0 < TIMEOUTS.0 || d.0 > TIMEOUTS.1 {
        return Err(format!(
            "invalid configuration at `limits.{key}`: must be between 100ms and 1h"
        ));
    }
    Ok(d.0)
}

/// The listener's bounds: a cap of 1 to 1,000,000 connections, timeouts of
/// 100 ms to 1 hour. Every `[limits]` timeout is checked here, the
/// gateway's too, so a bad value stops any start.
pub fn connection_limits(config: &Config) -> Result<gatehouse_server::ConnectionLimits, String> {
    let l = &config.limits;
    upstream_response_timeout(config)?;
    if !(1..=1_000_000).contains(&l.max_connections) {
        return Err(
            "invalid configuration at `limits.max_connections`: must be between 1 and 1000000"
                .into(),
        );
    }
    Ok(gatehouse_server::ConnectionLimits {
        max_connections: l.max_connections as usize,
        header_read_timeout: timeout("header_read_timeout", &l.header_read_timeout)?,
        idle_timeout: timeout("idle_timeout", &l.idle_timeout)?,
        request_body_timeout: timeout("request_body_timeout", &l.request_body_timeout)?,
    })
}

/// How long the gateway waits for an upstream's response headers.
pub fn upstream_response_timeout(config: &Config) -> Result<Duration, String> {
    timeout(
        "upstream_response_timeout",
        &config.limits.upstream_response_timeout,
    )
}

/// `limits.limiter_capacity`: 16 to 10,000,000 keys per limiter table.
pub fn limiter_capacity(config: &Config) -> Result<usize, String> {
    let n = config.limits.limiter_capacity;
    if !(16..=10_000_000).contains(&n) {
        return Err(
            "invalid configuration at `limits.limiter_capacity`: must be between 16 and 10000000"
                .into(),
        );
    }
    Ok(n as usize)
}
