//! The signing keys' share of the server's upkeep, run on every poll tick
//! (`store.poll_interval`, 1 s by default) so that rotations take effect on
//! every replica on time and without a restart:
//! - after a key change in the Store's change sequence (a `gatehouse key
//!   rotate`, another replica's automatic rotation or deletion), reload the
//!   rows; otherwise recompute the states from the rows held, which is what
//!   turns a pending key current and a previous key retired;
//! - delete retired keys' rows (their private material is of no further use);
//! - with `[keys] rotate_every`, add a key when one is due.
//!
//! The rows are also reloaded every [`FULL_RELOAD_EVERY`] whatever the change
//! log said: a poll that failed halfway, or an outage longer than the change
//! log's history, could otherwise hide a key change from this replica for
//! good.
//!
//! Store failures keep the key set in use and are logged once per streak.

use gatehouse_oauth::AuthorizationServer;
use std::time::{Duration, Instant};

/// The longest a replica goes without reading the key rows afresh.
const FULL_RELOAD_EVERY: Duration = Duration::from_secs(60);

/// Logs the first failure of a streak as a warning, and the recovery.
#[derive(Default)]
struct Streak(bool);

impl Streak {
    fn fail(&mut self, what: &str, error: &dyn std::fmt::Display) {
        if !self.0 {
            tracing::warn!(error = %error, "{what}");
            self.0 = true;
        }
    }

    fn ok(&mut self, what: &str) {
        if std::mem::take(&mut self.0) {
            tracing::info!("{what}");
        }
    }
}

#[derive(Default)]
pub(crate) struct KeyUpkeep {
    /// A key change was seen but the reload failed: retry it.
    reload_pending: bool,
    /// When the rows were last read (none yet: read on the first tick after
    /// `FULL_RELOAD_EVERY`, the start having just read them).
    last_reload: Option<Instant>,
    load: Streak,
    delete: Streak,
    rotate: Streak,
}

impl KeyUpkeep {
    pub(crate) async fn tick(&mut self, server: &AuthorizationServer, keys_changed: bool) {
        let now = server.now();
        let store = server.store.as_ref();
        let due = self.last_reload.get_or_insert_with(Instant::now).elapsed() >= FULL_RELOAD_EVERY;
        let reload = keys_changed || self.reload_pending || due;
        let result = if reload {
            server.keys.reload(store, now).await
        } else {
            server.keys.refresh(now)
        };
        match result {
            Ok(changed) => {
                self.reload_pending = false;
                if reload {
                    self.last_reload = Some(Instant::now());
                }
                self.load.ok("signing keys load again");
                if changed {
                    let set = server.keys.snapshot();
                    let published: Vec<&str> =
                        set.published.iter().map(|k| k.kid.as_str()).collect();
                    tracing::info!(
                        kid = %set.current.kid,
                        alg = %set.current.alg,
                        published = ?published,
                        "signing keys changed"
                    );
                }
            }
            Err(e) => {
                self.reload_pending = reload;
                self.load
                    .fail("loading signing keys failed; keeping the keys in use", &e);
            }
        }
        for kid in server.keys.retired(now) {
            match store.delete_key(&kid).await {
                Ok(deleted) => {
                    self.delete.ok("deleting retired keys works again");
                    if deleted {
                        tracing::info!(kid = %kid, "retired signing key deleted");
                    }
                }
                Err(e) => self
                    .delete
                    .fail("deleting a retired signing key failed", &e),
            }
        }
        let keys = &server.settings.keys;
        if let Some(every) = keys.rotate_every {
            match server
                .keys
                .rotate_if_due(store, now, every, keys.pre_publication)
                .await
            {
                Ok(added) => {
                    self.rotate.ok("automatic key rotation works again");
                    for kid in added {
                        tracing::info!(
                            kid = %kid,
                            activate_at = now.saturating_add(keys.pre_publication.as_secs() as i64),
                            "automatic rotation: new signing key published"
                        );
                    }
                }
                Err(e) => self.rotate.fail("automatic key rotation failed", &e),
            }
        }
    }
}
