//! The layers merged into one [`Config`]: the TOML file, the `GATEHOUSE_*`
//! environment (its keys derived from the serialised defaults) and the
//! command-line flags.

use super::Config;
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Environment variables read directly, never through a config file.
pub const ENV_KEK: &str = "GATEHOUSE_KEY_ENCRYPTION_KEY";
const ENV_ONLY: &[&str] = &[ENV_KEK];
const ENV_PREFIX: &str = "GATEHOUSE_";
/// Declared keys the environment does not bind: lists of tables, which one
/// comma-separated variable cannot express (and whose element type the
/// serialised defaults, being empty lists, cannot tell).
const ENV_UNBOUND: &[&str] = &["gateway.servers"];
/// Variables that name a key other than their spelling: `GATEHOUSE_STORE`
/// is the name for the store URL, which lives at `store.url` next to
/// the other `[store]` settings.
const ENV_ALIASES: &[(&str, &str)] = &[("store", "store.url")];

/// Values given on the command line; `None` means "not given".
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub listen: Option<String>,
    pub issuer: Option<String>,
    pub data_dir: Option<PathBuf>,
    pub audiences: Vec<String>,
    /// Further flags as (dotted key, value), applied last in this order;
    /// a list given here replaces the list from the file (docs/decisions.md
    /// "Configuration and CLI").
    pub set: Vec<(&'static str, Value)>,
}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

fn set_path(root: &mut Value, path: &[String], value: Value) {
    let mut node = root;
    for key in &path[..path.len() - 1] {
        if !node.get(key).is_some_and(Value::is_object)
            && let Value::Object(m) = node
        {
            m.insert(key.clone(), Value::Object(Map::new()));
        }
        node = &mut node[key.as_str()];
    }
    if let Value::Object(m) = node {
        m.insert(path[path.len() - 1].clone(), value);
    }
}

fn lookup<'a>(root: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter()
        .try_fold(root, |node, key| node.as_object()?.get(key))
}

/// Applies `GATEHOUSE_<KEY>` variables (nested with `__`) to `tree`. The
/// declared keys and their types come from `defaults`; an unknown variable is
/// logged and ignored (docs/decisions.md "Configuration and CLI"); a value
/// of the wrong type is an error naming the variable.
fn apply_env(
    tree: &mut Value,
    defaults: &Value,
    vars: impl Iterator<Item = (String, String)>,
    warnings: &mut Vec<String>,
) -> Result<(), ConfigError> {
    for (name, raw) in vars {
        let Some(rest) = name.strip_prefix(ENV_PREFIX) else {
            continue;
        };
        if ENV_ONLY.contains(&name.as_str()) {
            continue;
        }
        let mut path: Vec<String> = rest
            .to_ascii_lowercase()
            .split("__")
            .map(String::from)
            .collect();
        if let Some((_, to)) = ENV_ALIASES.iter().find(|(from, _)| path.join(".") == *from) {
            path = to.split('.').map(String::from).collect();
        }
        if ENV_UNBOUND.contains(&path.join(".").as_str()) {
            warnings.push(format!(
                "ignoring environment variable {name}: `{}` can be set only in the config file",
                path.join(".")
            ));
            continue;
        }
        let Some(default) = lookup(defaults, &path).filter(|v| !v.is_object()) else {
            warnings.push(format!("ignoring unknown environment variable {name}"));
            continue;
        };
        let bad = |what: &str| ConfigError(format!("environment variable {name}: expected {what}"));
        let value = match default {
            Value::Array(_) => Value::Array(
                raw.split(',')
                    .map(str::trim)
                    .filter(|s| !s.is_empty())
                    .map(|s| Value::String(s.to_string()))
                    .collect(),
            ),
            Value::Number(_) => raw
                .trim()
                .parse::<u64>()
                .map(Value::from)
                .map_err(|_| bad("a non-negative integer"))?,
            Value::Bool(_) => raw
                .trim()
                .parse::<bool>()
                .map(Value::Bool)
                .map_err(|_| bad("true or false"))?,
            _ => Value::String(raw),
        };
        set_path(tree, &path, value);
    }
    Ok(())
}

/// Loads the configuration from all layers. Returns warnings to log once
/// logging is up.
pub fn load(
    file: Option<&Path>,
    overrides: &Overrides,
    env: impl Iterator<Item = (String, String)>,
) -> Result<(Config, Vec<String>), ConfigError> {
    let defaults = serde_json::to_value(Config::default())
        .map_err(|e| ConfigError(format!("defaults: {e}")))?;
    let mut tree = Value::Object(Map::new());
    if let Some(path) = file {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError(format!("cannot read config file {}: {e}", path.display())))?;
        // Not `e`'s Display: it quotes the offending line, which may hold a
        // secret (an unquoted store URL with its password, say).
        let table: toml::Table = toml::from_str(&text).map_err(|e| {
            let at = e
                .span()
                .map(|span| {
                    // Bytes, not chars: the offset need not be a char boundary.
                    let before = &text.as_bytes()[..span.start.min(text.len())];
                    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
                    let column = before.len()
                        - before
                            .iter()
                            .rposition(|b| *b == b'\n')
                            .map_or(0, |i| i + 1)
                        + 1;
                    format!(" at line {line}, column {column}")
                })
                .unwrap_or_default();
            ConfigError(format!(
                "config file {}: invalid TOML{at}: {}",
                path.display(),
                e.message()
            ))
        })?;
        tree = serde_json::to_value(table)
            .map_err(|e| ConfigError(format!("config file {}: {e}", path.display())))?;
        // `store = "postgres://…"` (the spelling) is `[store] url`.
        if let Some(url) = tree.get("store").filter(|v| v.is_string()).cloned() {
            set_path(
                &mut tree,
                &["store".to_string()],
                serde_json::json!({ "url": url }),
            );
        }
    }
    let mut warnings = Vec::new();
    apply_env(&mut tree, &defaults, env, &mut warnings)?;
    let flag = |tree: &mut Value, key: &str, v: Value| set_path(tree, &[key.to_string()], v);
    if let Some(v) = &overrides.listen {
        flag(&mut tree, "listen", v.clone().into());
    }
    if let Some(v) = &overrides.issuer {
        flag(&mut tree, "issuer", v.clone().into());
    }
    if let Some(v) = &overrides.data_dir {
        flag(&mut tree, "data_dir", v.display().to_string().into());
    }
    if !overrides.audiences.is_empty() {
        // Flags replace lists from the file (docs/decisions.md
        // "Configuration and CLI").
        flag(
            &mut tree,
            "allowed_audiences",
            overrides.audiences.clone().into(),
        );
    }
    for (key, v) in &overrides.set {
        let path: Vec<String> = key.split('.').map(String::from).collect();
        set_path(&mut tree, &path, v.clone());
    }
    let config: Config = serde_path_to_error::deserialize(tree).map_err(|e| {
        let path = e.path().to_string();
        ConfigError(format!("invalid configuration at `{path}`: {}", e.inner()))
    })?;
    Ok((config, warnings))
}
