//! `gatehouse key …`: rotating and listing the signing keys from the command
//! line, and the `[keys]` settings. Works beside running servers: it writes
//! the same store, and every server follows the change sequence and the
//! clock (docs/operations.md "Signing keys").

use crate::config::Config;
use crate::output::{Format, print};
use crate::{Common, load_config, setup};
use clap::Subcommand;
use gatehouse_oauth::clock::system_now;
use gatehouse_oauth::keys::Alg;
use gatehouse_oauth::keys::keyset::{check_kek, new_signing_key, times};
use gatehouse_oauth::keys::states::{derive_states, retention};
use gatehouse_oauth::settings::KeySettings;
use gatehouse_oauth::store::{KeyKind, Store, StoredKey};
use serde_json::{Value, json};
use std::time::Duration;

/// Below this, a resource server that caches the JWKS for as long as its
/// `Cache-Control` allows (`max-age=300`, and the gateway's periodic refetch
/// is also 5 minutes) may see a token signed by the new key before it has
/// seen the key. Gatehouse's gateway refetches on an unknown `kid`, so it
/// copes; others may not: warn, but allow it (tests use seconds).
const SAFE_PRE_PUBLICATION: Duration = Duration::from_secs(300 + 60);
/// Longer than this, a rotation takes effect too late to be useful.
const MAX_PRE_PUBLICATION: Duration = Duration::from_secs(30 * 86_400);
/// The shortest automatic rotation period (each period adds a published key
/// for the retention time, so very short ones grow the JWKS).
const MIN_ROTATE_EVERY: Duration = Duration::from_secs(10);
const MAX_ROTATE_EVERY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How far in the past `key rotate --now` dates its key's activation.
const NOW_SKEW_SECS: i64 = 5;

#[derive(Subcommand)]
pub enum KeyCommand {
    /// Add a new signing key: published in the JWKS at once, signing after
    /// `[keys] pre_publication`; the key it replaces stays published until
    /// every token it signed has expired. Refused while a key is pending.
    Rotate {
        #[command(flatten)]
        common: Common,
        /// ES256, RS256 or EdDSA (default: signing_alg).
        #[arg(long, value_parser = parse_alg)]
        alg: Option<Alg>,
        /// Sign with the new key at once, skipping pre-publication: for a
        /// key that may have leaked. Resource servers that cache the JWKS may
        /// refuse its tokens until they refetch it (Gatehouse's gateway
        /// refetches on an unknown `kid`). Then retire the old key.
        #[arg(long)]
        now: bool,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// Stop publishing a signing key at once: tokens it signed are refused
    /// from then on. Refused for the current key of its algorithm (rotate
    /// with --now first).
    Retire {
        #[command(flatten)]
        common: Common,
        /// The key's id (`kid`), as `gatehouse key list` shows it (a kid
        /// may start with `-`).
        #[arg(allow_hyphen_values = true)]
        kid: String,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
    /// List the signing keys and their states (never private material).
    List {
        #[command(flatten)]
        common: Common,
        #[arg(long, value_enum, default_value_t)]
        format: Format,
    },
}

fn parse_alg(s: &str) -> Result<Alg, String> {
    s.parse()
}

/// Checks `[keys]`, naming the key at fault.
pub fn key_settings(config: &Config) -> Result<KeySettings, String> {
    let bad = |key: &str, e: &str| format!("invalid configuration at `keys.{key}`: {e}");
    let pre = config.keys.pre_publication.0;
    if pre > MAX_PRE_PUBLICATION {
        return Err(bad("pre_publication", "must be at most 30 days"));
    }
    if pre < SAFE_PRE_PUBLICATION {
        tracing::warn!(
            pre_publication = %humantime::format_duration(pre),
            "keys.pre_publication is shorter than the JWKS cache lifetime (5 minutes) plus a minute: resource servers that cache the JWKS may refuse tokens signed by a new key until they refetch it"
        );
    }
    let rotate_every = config.keys.rotate_every.map(|d| d.0);
    if let Some(every) = rotate_every {
        if !(MIN_ROTATE_EVERY..=MAX_ROTATE_EVERY).contains(&every) {
            return Err(bad("rotate_every", "must be between 10s and 10 years"));
        }
        if every <= pre {
            return Err(bad(
                "rotate_every",
                "must be longer than keys.pre_publication (a key must become current before the next is added)",
            ));
        }
    }
    Ok(KeySettings {
        pre_publication: pre,
        rotate_every,
    })
}

pub async fn run(command: KeyCommand) -> Result<(), String> {
    match command {
        KeyCommand::Rotate {
            common,
            alg,
            now,
            format,
        } => {
            let config = load_config(&common, Default::default())?;
            let settings = key_settings(&config)?;
            let alg = match alg {
                Some(a) => a,
                None => config
                    .signing_alg
                    .parse()
                    .map_err(|e| format!("invalid configuration at `signing_alg`: {e}"))?,
            };
            let store = setup::open_admin_store(&config, common.init).await?;
            let pre = if now {
                Duration::ZERO
            } else {
                settings.pre_publication
            };
            let view = rotate(&config, store.as_ref(), alg, pre).await?;
            print(&view, format)
        }
        KeyCommand::Retire {
            common,
            kid,
            format,
        } => {
            let config = load_config(&common, Default::default())?;
            let store = setup::open_admin_store(&config, common.init).await?;
            let view = retire(store.as_ref(), &kid).await?;
            print(&view, format)
        }
        KeyCommand::List { common, format } => {
            let config = load_config(&common, Default::default())?;
            key_settings(&config)?;
            let store = setup::open_admin_store(&config, common.init).await?;
            let rows = signing_keys(store.as_ref()).await?;
            let now = system_now();
            let views = list(&rows, now, retention());
            print(&Value::Array(views), format)
        }
    }
}

async fn signing_keys(store: &dyn Store) -> Result<Vec<StoredKey>, String> {
    store
        .keys(KeyKind::Signing)
        .await
        .map_err(|e| format!("cannot read the keys: {e}"))
}

/// Adds the new key, or refuses with the reason and stores nothing.
async fn rotate(
    config: &Config,
    store: &dyn Store,
    alg: Alg,
    pre_publication: Duration,
) -> Result<Value, String> {
    let kek = setup::key_encryption_key(config)?;
    let rows = signing_keys(store).await?;
    // A key sealed under another key-encryption key would stop every
    // server from loading its keys: check this one opens what is there.
    if let Some(row) = rows.first() {
        check_kek(&kek, row).map_err(|e| e.to_string())?;
    }
    let now = system_now();
    let of_alg: Vec<&StoredKey> = rows.iter().filter(|r| r.alg == alg.as_str()).collect();
    if let Some(pending) = of_alg.iter().find(|r| r.activate_at > now) {
        return Err(format!(
            "a pending {alg} key already exists: {} activates at {} (in {}); nothing was stored — rotate again once it is current (in an emergency: `gatehouse key retire` it, then `key rotate --now`)",
            pending.id,
            pending.activate_at,
            humantime::format_duration(Duration::from_secs(
                (pending.activate_at - now).unsigned_abs()
            ))
        ));
    }
    // With no active key of this algorithm there is nothing to hand over
    // from (no token was ever signed with it): the key is active at once,
    // and inserted only while no key of the algorithm exists at all.
    // Active "from the beginning" (0), not from this machine's `now`: a
    // replica whose clock runs behind must not see it as pending.
    let (activate_at, newer_than) = if of_alg.is_empty() {
        (0, i64::MIN)
    } else if pre_publication.is_zero() {
        // At once (`--now`): a few seconds in the past, so a replica whose
        // clock runs a little behind does not see it as pending (and keep
        // signing with a key about to be retired), yet after its
        // predecessor, so it is the newest.
        let latest = of_alg.iter().map(|r| r.activate_at).max().unwrap_or(0);
        (now.saturating_sub(NOW_SKEW_SECS).max(latest + 1), now)
    } else {
        let pre = i64::try_from(pre_publication.as_secs()).unwrap_or(i64::MAX);
        (now.saturating_add(pre), now)
    };
    let row = new_signing_key(&kek, alg, now, activate_at).map_err(|e| e.to_string())?;
    let inserted = store
        .insert_key_unless_newer(&row, newer_than)
        .await
        .map_err(|e| format!("cannot store the key: {e}"))?;
    if !inserted {
        return Err(format!(
            "another {alg} key was added at the same moment (by another replica or command); nothing was stored — see `gatehouse key list`"
        ));
    }
    let rows = signing_keys(store).await?;
    let views = list(&rows, now, retention());
    let mut view = views
        .iter()
        .find(|v| v["kid"] == row.id.as_str())
        .cloned()
        .unwrap_or_else(|| json!({ "kid": row.id }));
    // The key it replaces, and when that one leaves the JWKS.
    let predecessor = of_alg
        .iter()
        .max_by_key(|r| (r.activate_at, r.created_at, &r.id));
    if let (Some(prev), Value::Object(m)) = (predecessor, &mut view) {
        let retire_at = activate_at.saturating_add(retention());
        m.insert(
            "replaces".into(),
            json!({ "kid": prev.id, "retire_at": retire_at }),
        );
    }
    Ok(view)
}

/// Deletes a signing key that is not its algorithm's current one, or
/// refuses with the reason and changes nothing. Every server drops it from
/// its key set at its next store poll; the embedded gateway with it, a
/// standalone gateway at its next JWKS fetch (at most 5 minutes).
async fn retire(store: &dyn Store, kid: &str) -> Result<Value, String> {
    let rows = signing_keys(store).await?;
    let now = system_now();
    let views = list(&rows, now, retention());
    let Some(view) = views.iter().find(|v| v["kid"] == kid) else {
        return Err(format!(
            "no signing key {kid:?}; nothing was changed — see `gatehouse key list`"
        ));
    };
    if view["state"] == "current" {
        return Err(format!(
            "{kid} is the current {} key: retiring it would leave no key to sign with; \
             nothing was changed — run `gatehouse key rotate --now --alg {}` first, then retire it",
            view["alg"].as_str().unwrap_or_default(),
            view["alg"].as_str().unwrap_or_default()
        ));
    }
    if !store
        .delete_key(kid)
        .await
        .map_err(|e| format!("cannot delete the key: {e}"))?
    {
        return Err(format!(
            "{kid} was removed meanwhile (by another command or a server's cleanup)"
        ));
    }
    Ok(json!({
        "retired": kid,
        "alg": view["alg"],
        "was": view["state"],
    }))
}

/// Each key as listed: id, algorithm, state and times — never the sealed
/// material. `retire_at` appears once a key is superseded.
fn list(rows: &[StoredKey], now: i64, retention: i64) -> Vec<Value> {
    let times: Vec<_> = rows.iter().map(times).collect();
    let derived = derive_states(&times, now, retention);
    rows.iter()
        .zip(&derived)
        .map(|(r, d)| {
            let mut v = json!({
                "kid": r.id,
                "alg": r.alg,
                "state": d.state.as_str(),
                "created_at": r.created_at,
                "activate_at": r.activate_at,
            });
            if let (Some(retire_at), Value::Object(m)) = (d.retire_at, &mut v) {
                m.insert("retire_at".into(), retire_at.into());
            }
            v
        })
        .collect()
}
