//! `gatehouse client keygen` and `gatehouse client assertion`: the
//! `private_key_jwt` recipe (RFC 7523 §2.2) without another tool. `keygen`
//! writes a private key (PKCS#8 PEM, mode 0600) and its public JWKS for
//! `client create --auth-method private_key_jwt --jwks FILE`; `assertion`
//! signs a client assertion with that key for a token request. Neither
//! touches the store: the private key never goes near the server.

use crate::output::{Format, print};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use gatehouse_oauth::clock::system_now;
use gatehouse_oauth::keys::{Alg, SigningKey};
use gatehouse_oauth::tokens::issue::new_jti;
use serde_json::json;
use std::io::Write;
use std::path::Path;

const PEM_LABEL: &str = "PRIVATE KEY";
/// An assertion lives one minute: enough to send it, short enough that a
/// copy in a shell history is useless soon after.
const ASSERTION_LIFETIME_SECS: i64 = 60;
/// A key file larger than this is not a key (an RSA-4096 PKCS#8 PEM is
/// about 3.3 KB).
const MAX_KEY_FILE_BYTES: u64 = 16 * 1024;

/// Writes a new key pair: the private key to `key` (created, never
/// overwritten, 0600) and `{"keys":[public JWK]}` to `jwks`.
pub fn keygen(alg: Alg, key: &Path, jwks: &Path, format: Format) -> Result<(), String> {
    if key == jwks {
        return Err("--key and --jwks name the same file; nothing was written".into());
    }
    let (signing, pkcs8) = SigningKey::generate(alg).map_err(|e| e.to_string())?;
    let public = json!({ "keys": [signing.public_jwk()] });
    let text = serde_json::to_string_pretty(&public).map_err(|e| e.to_string())?;
    // The public half first: if it cannot be made, no private key is left
    // behind. Both are created new, never written through an existing
    // file or link.
    create_new(jwks, &format!("{text}\n"), 0o644, "--jwks")?;
    if let Err(e) = create_new(key, &pem(&pkcs8), 0o600, "--key") {
        let _ = std::fs::remove_file(jwks);
        return Err(e);
    }
    print(
        &json!({
            "kid": signing.kid,
            "alg": alg.as_str(),
            "private_key": key.display().to_string(),
            "jwks": jwks.display().to_string(),
        }),
        format,
    )
}

/// Prints a client assertion signed with the private key in `key`:
/// `iss` = `sub` = `client_id`, `aud` = `audience` (the issuer or the token
/// endpoint URL), a fresh `jti`, valid for a minute.
pub fn assertion(alg: Alg, key: &Path, client_id: &str, audience: &str) -> Result<(), String> {
    let der = read_private(key)?;
    let signing = SigningKey::from_pkcs8(alg, &der).map_err(|e| {
        format!(
            "{} is not a {} private key ({e}); pass --alg to match it",
            key.display(),
            alg.as_str()
        )
    })?;
    let now = system_now();
    let claims = json!({
        "iss": client_id,
        "sub": client_id,
        "aud": audience,
        "jti": new_jti(),
        "iat": now,
        "exp": now + ASSERTION_LIFETIME_SECS,
    });
    let jwt = signing
        .sign_jwt("JWT", &claims)
        .map_err(|e| e.to_string())?;
    println!("{jwt}");
    Ok(())
}

fn pem(der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {PEM_LABEL}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(chunk));
        out.push('\n');
    }
    out.push_str(&format!("-----END {PEM_LABEL}-----\n"));
    out
}

/// The DER inside a PKCS#8 PEM file (a size-limited read).
fn read_private(path: &Path) -> Result<Vec<u8>, String> {
    let meta =
        std::fs::metadata(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    if meta.len() > MAX_KEY_FILE_BYTES {
        return Err(format!("{} is too large for a key", path.display()));
    }
    crate::setup::check_private(path)?;
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let body = text
        .trim()
        .strip_prefix(&format!("-----BEGIN {PEM_LABEL}-----"))
        .and_then(|t| t.strip_suffix(&format!("-----END {PEM_LABEL}-----")))
        .ok_or_else(|| format!("{} is not a PKCS#8 PEM private key", path.display()))?;
    let b64: String = body.split_whitespace().collect();
    STANDARD
        .decode(b64)
        .map_err(|_| format!("{} is not a PKCS#8 PEM private key", path.display()))
}

/// Creates `path` with `mode`; refuses anything already there (a file or a
/// link: `create_new` does not follow one).
fn create_new(path: &Path, text: &str, mode: u32, flag: &str) -> Result<(), String> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            format!(
                "{} exists; nothing was written (choose another {flag})",
                path.display()
            )
        } else {
            format!("cannot create {}: {e}", path.display())
        }
    })?;
    // A half-written key is worse than none: take it back on failure.
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| {
            let _ = std::fs::remove_file(path);
            format!("cannot write {}: {e}", path.display())
        })
}
