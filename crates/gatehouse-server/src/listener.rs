//! The accept loop shared by `serve` and `gateway`: at most
//! `max_connections` connections at once, each served under the bounds of
//! [`ConnectionLimits`] ([`crate::connection`]), TCP_NODELAY on every one,
//! and a graceful shutdown that stops accepting and lets connections finish.
//!
//! When the cap is reached the loop stops accepting: further connections
//! wait in the kernel's listen backlog, costing the process no file
//! descriptor, and are served as slots free up (the header and idle timers
//! free the slots of stalled connections). An `accept` that fails for want of
//! descriptors or memory (EMFILE, ENFILE, ENOBUFS) is retried after a short
//! pause, never in a busy loop and never by exiting.

use crate::connection::{self, ConnectionLimits};
use axum::Router;
use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Pause after an `accept` failure other than a connection reset by its peer.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);
/// Repeated warnings (cap reached, accept failing) are logged this seldom.
const WARN_EVERY: Duration = Duration::from_secs(10);

/// Logs a recurring condition at most once per [`WARN_EVERY`].
struct Throttled(Option<Instant>);

impl Throttled {
    fn due(&mut self) -> bool {
        let due = self.0.is_none_or(|t| t.elapsed() >= WARN_EVERY);
        if due {
            self.0 = Some(Instant::now());
        }
        due
    }
}

/// Serves `app` on `listener` until `shutdown` resolves, then stops
/// accepting and returns once every connection has finished.
pub async fn serve(
    app: Router,
    listener: TcpListener,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    // Semaphore permits are bounded (and `acquire_many` takes a u32).
    let max = limits
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(max));
    let mut stopping = stop_rx.clone();
    let mut full = Throttled(None);
    let mut failing = Throttled(None);
    loop {
        let slot = match slots.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                if full.due() {
                    tracing::warn!(
                        max_connections = max,
                        "connection limit reached: new connections wait until one closes"
                    );
                }
                tokio::select! {
                    slot = slots.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break,
                    },
                    _ = stopping.wait_for(|s| *s) => break,
                }
            }
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stopping.wait_for(|s| *s) => break,
        };
        let (tcp, peer) = match accepted {
            Ok(a) => a,
            Err(e) if is_connection_error(&e) => continue,
            Err(e) => {
                if failing.due() {
                    tracing::error!(error = %e, "accepting connections fails; retrying shortly");
                }
                tokio::select! {
                    () = tokio::time::sleep(ACCEPT_RETRY) => continue,
                    _ = stopping.wait_for(|s| *s) => break,
                }
            }
        };
        // Small JSON answers and SSE events go out at once, not after
        // Nagle's delay.
        let _ = tcp.set_nodelay(true);
        tokio::spawn(connection::serve(
            tcp,
            peer,
            app.clone(),
            limits,
            stop_rx.clone(),
            slot,
        ));
    }
    drop(listener);
    // Every connection holds a slot until it ends: all slots back, all done.
    let _ = slots.acquire_many(max as u32).await;
    Ok(())
}

/// Failures of one incoming connection (reset before it was accepted), not
/// of the listener.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}
