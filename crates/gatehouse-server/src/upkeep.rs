//! Background upkeep: follow the store's change log (so a client deleted
//! elsewhere stops working within one poll interval), keep the signing keys
//! current ([`crate::key_upkeep`]), record which self-registered clients were
//! used, delete those idle too long or never used, and prune what has
//! expired.

use crate::key_upkeep::KeyUpkeep;
use gatehouse_oauth::AuthorizationServer;
use gatehouse_oauth::client::ClientOrigin;
use gatehouse_oauth::error::StoreError;

use std::sync::Arc;
use std::time::{Duration, Instant};

/// Revocations are kept this long past the token's `exp`: the largest clock
/// skew a verifier may allow (the gateway's leeway is at most 60 s). Used
/// assertion `jti`s and expired grants get the same margin: a replica whose
/// clock runs behind may still accept them.
const CLOCK_SKEW_MARGIN_SECS: i64 = 60;

/// The change log is polled every second by every replica; a day of history
/// is plenty.
const CHANGE_LOG_KEPT_SECS: i64 = 24 * 3600;

/// Starts the two upkeep tasks.
pub fn spawn_upkeep(server: Arc<AuthorizationServer>) {
    tokio::spawn(follow_changes(server.clone()));
    tokio::spawn(sweep(server));
}

/// Polls the change log each `store_poll_interval`, then lets the key upkeep
/// act on what it saw.
async fn follow_changes(server: Arc<AuthorizationServer>) {
    let mut tick = tokio::time::interval(server.settings.store_poll_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut healthy = true;
    let mut keys = KeyUpkeep::default();
    loop {
        tick.tick().await;
        let polled = server.clients.poll(server.store.as_ref()).await;
        match &polled {
            Ok(_) if !healthy => {
                tracing::info!("store reachable again");
                healthy = true;
            }
            Ok(_) => {}
            Err(e) if healthy => {
                tracing::warn!(error = %e, "store poll failed; serving cached clients");
                healthy = false;
            }
            Err(_) => {}
        }
        let keys_changed = polled.is_ok_and(|p| p.keys_changed);
        keys.tick(&server, keys_changed).await;
    }
}

/// Uses are recorded and expired grants pruned each minute, and the sweeps
/// run hourly — or, with a `registration.unused_expiry` shorter than four
/// hours, each quarter of it (at least every second), so that a used client
/// is recorded as used long before an unused one expires.
async fn sweep(server: Arc<AuthorizationServer>) {
    let quarter = server.settings.registration.unused_expiry / 4;
    let touch_every = quarter.clamp(Duration::from_secs(1), Duration::from_secs(60));
    let sweep_every = quarter.clamp(Duration::from_secs(1), Duration::from_secs(3600));
    let mut tick = tokio::time::interval(touch_every);
    let mut last_sweep: Option<Instant> = None;
    loop {
        tick.tick().await;
        record_uses(&server).await;
        // Codes, sign-in sessions, refresh tokens and the records of access
        // tokens issued to people, once expired — every tick (at most a
        // minute), not hourly: codes live a minute, and a client asking for
        // them as fast as it may would otherwise pile up an hour of rows.
        // Each table is pruned through its expiry index.
        let store = server.store.as_ref();
        let margin = server.now() - CLOCK_SKEW_MARGIN_SECS;
        pruned("expired grants", store.prune_grants(margin).await);
        if last_sweep.is_none_or(|t| t.elapsed() >= sweep_every) {
            last_sweep = Some(Instant::now());
            sweep_clients(&server).await;
            let margin = server.now() - CLOCK_SKEW_MARGIN_SECS;
            // Revocations matter only until the token's own expiry, as
            // judged by the slowest clock that may still accept it.
            pruned("revocations", store.prune_revocations(margin).await);
            // An assertion past its `exp` (+ leeway, already in the stored
            // expiry) is refused anyway; its `jti` can go.
            pruned(
                "used assertion jtis",
                store.prune_assertion_jtis(margin).await,
            );
            let history = server.now() - CHANGE_LOG_KEPT_SECS;
            pruned("change log entries", store.prune_changes(history).await);
        }
    }
}

/// Stores when the clients used since the last tick were last used.
async fn record_uses(server: &AuthorizationServer) {
    let used = server.clients.take_used();
    if !used.is_empty()
        && let Err(e) = server.store.touch_clients(&used, server.now()).await
    {
        tracing::warn!(error = %e, "recording client use failed");
    }
}

/// Deletes self-registered clients idle past `idle_expiry` or never used
/// within `unused_expiry`.
async fn sweep_clients(server: &AuthorizationServer) {
    let reg = &server.settings.registration;
    let store = server.store.as_ref();
    let idle_since = server.now() - reg.idle_expiry.as_secs() as i64;
    let deleted = store
        .delete_idle_clients(ClientOrigin::Dynamic, idle_since)
        .await;
    deleted_clients("idle", deleted);
    let unused_since = server.now() - reg.unused_expiry.as_secs() as i64;
    let deleted = store
        .delete_unused_clients(ClientOrigin::Dynamic, unused_since)
        .await;
    deleted_clients("never-used", deleted);
}

/// Logs a prune: how many rows went (debug), or why none could (warn).
fn pruned(what: &str, outcome: Result<u64, StoreError>) {
    match outcome {
        Ok(0) => {}
        Ok(n) => tracing::debug!(deleted = n, "pruned {what}"),
        Err(e) => tracing::warn!(error = %e, "pruning {what} failed"),
    }
}

/// Logs a client sweep: deleting clients is worth an info line.
fn deleted_clients(which: &str, outcome: Result<u64, StoreError>) {
    match outcome {
        Ok(0) => {}
        Ok(n) => tracing::info!(deleted = n, "deleted {which} self-registered clients"),
        Err(e) => tracing::warn!(error = %e, "{which} client sweep failed"),
    }
}
