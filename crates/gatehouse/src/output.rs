//! Command output: JSON on stdout by default, human text with `--format text`.

use clap::ValueEnum;
use serde_json::Value;

#[derive(Debug, Clone, Copy, Default, ValueEnum)]
pub enum Format {
    #[default]
    Json,
    Text,
}

pub fn print_json(v: &Value) -> Result<(), String> {
    let s = serde_json::to_string_pretty(v).map_err(|e| e.to_string())?;
    println!("{s}");
    Ok(())
}

fn text(v: &Value, indent: usize, out: &mut String) {
    let pad = "  ".repeat(indent);
    match v {
        Value::Object(m) => {
            for (k, v) in m {
                match v {
                    Value::Object(_) => {
                        out.push_str(&format!("{pad}{k}:\n"));
                        text(v, indent + 1, out);
                    }
                    Value::Array(a) => {
                        let items: Vec<String> = a.iter().map(scalar).collect();
                        out.push_str(&format!("{pad}{k}: {}\n", items.join(", ")));
                    }
                    _ if k.ends_with("_at") => {
                        out.push_str(&format!("{pad}{k}: {}\n", time(k, v)));
                    }
                    _ => out.push_str(&format!("{pad}{k}: {}\n", scalar(v))),
                }
            }
        }
        Value::Array(a) => {
            for item in a {
                text(item, indent, out);
                out.push('\n');
            }
        }
        _ => out.push_str(&format!("{pad}{}\n", scalar(v))),
    }
}

/// A `…_at` member (Unix seconds in JSON) for people: RFC 3339 UTC. 0 means
/// "never" for an expiry (`client_secret_expires_at`, RFC 7591 §3.2.1) and
/// "from the start" for a key's `activate_at`.
fn time(key: &str, v: &Value) -> String {
    match v.as_i64() {
        Some(0) if key.ends_with("expires_at") => "never".to_string(),
        Some(0) => "from the start".to_string(),
        Some(secs) if secs > 0 => humantime::format_rfc3339_seconds(
            std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs.unsigned_abs()),
        )
        .to_string(),
        _ => scalar(v),
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub fn print(v: &Value, format: Format) -> Result<(), String> {
    match format {
        Format::Json => print_json(v),
        Format::Text => {
            let mut out = String::new();
            text(v, 0, &mut out);
            print!("{out}");
            Ok(())
        }
    }
}
