//! Cookies the pages set and read: the session, the CSRF pair and the
//! device cookie (see the module above for what each guarantees).

use super::*;

pub(super) struct Cookies {
    secure: bool,
}

impl Cookies {
    pub(super) fn of(state: &AppState) -> Cookies {
        Cookies {
            secure: state
                .server
                .settings
                .issuer
                .as_str()
                .starts_with("https://"),
        }
    }

    pub(super) fn name(&self, base: &str) -> String {
        if self.secure {
            format!("__Host-gatehouse_{base}")
        } else {
            format!("gatehouse_{base}")
        }
    }

    pub(super) fn set(&self, base: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
        let mut c = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax",
            self.name(base)
        );
        if self.secure {
            c.push_str("; Secure");
        }
        if let Some(age) = max_age {
            c.push_str(&format!("; Max-Age={age}"));
        }
        HeaderValue::from_str(&c).unwrap_or_else(|_| HeaderValue::from_static(""))
    }

    pub(super) fn get<'h>(&self, headers: &'h HeaderMap, base: &str) -> Option<&'h str> {
        self.get_sized(headers, base, MAX_COOKIE_BYTES)
    }

    pub(super) fn get_sized<'h>(
        &self,
        headers: &'h HeaderMap,
        base: &str,
        max: usize,
    ) -> Option<&'h str> {
        let name = self.name(base);
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v)
            .filter(|v| !v.is_empty() && v.len() <= max)
    }
}

/// The CSRF cookie of this browser (made now if it has none) and the token
/// its forms must carry.
pub(super) fn csrf(state: &AppState, headers: &HeaderMap) -> (String, Option<HeaderValue>) {
    let cookies = Cookies::of(state);
    let (cookie, set) = match cookies.get(headers, "csrf") {
        Some(c) => (c.to_string(), None),
        None => {
            let c = b64url(&random_bytes::<32>());
            let set = cookies.set("csrf", &c, None);
            (c, Some(set))
        }
    };
    let token = state
        .server
        .secrets
        .derive(CSRF_PURPOSE, &cookie)
        .unwrap_or_default();
    (token, set)
}

/// Whether a form post is this site's own: the token matches the cookie,
/// and the `Origin`, when the browser sends one, is the issuer's.
pub(super) fn csrf_ok(state: &AppState, headers: &HeaderMap, form: &PageForm) -> bool {
    let issuer = state.server.settings.issuer.as_str();
    let origin_ok = match headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
        None => true,
        Some(o) => {
            issuer.starts_with(o) && issuer[o.len()..].chars().next().is_none_or(|c| c == '/')
        }
    };
    let Some(cookie) = Cookies::of(state).get(headers, "csrf") else {
        return false;
    };
    let (Some(sent), Some(expected)) = (
        form.csrf(),
        state.server.secrets.derive(CSRF_PURPOSE, cookie),
    ) else {
        return false;
    };
    origin_ok && bool::from(sent.as_bytes().ct_eq(expected.as_bytes()))
}

/// What a browser's device cookie claims: that it signed in as `user_id`
/// before; unexpired, its MAC not yet checked.
pub(super) struct DeviceClaim<'h> {
    user_id: &'h str,
    expires_at: i64,
    pub(super) tag: &'h str,
}

/// The MAC of a device cookie for `user`, bound to the account's current
/// password hash (so a password change withdraws it).
pub(super) fn device_tag(state: &AppState, user: &User, expires_at: i64) -> Option<String> {
    state.server.secrets.derive(
        DEVICE_PURPOSE,
        &format!("{}\0{expires_at}\0{}", user.id, user.password_hash),
    )
}

/// The device cookie to set after `user` signed in: `ID.EXPIRY.MAC`,
/// `HttpOnly`, `SameSite=Lax`, `Secure` when the issuer is https.
pub(super) fn device_cookie(state: &AppState, user: &User) -> Option<HeaderValue> {
    let lifetime = state.server.settings.people.device_lifetime.as_secs();
    let expires_at = state.server.now() + lifetime as i64;
    let tag = device_tag(state, user, expires_at)?;
    Some(Cookies::of(state).set(
        "device",
        &format!("{}.{expires_at}.{tag}", user.id),
        Some(lifetime),
    ))
}

/// This browser's device cookie, if it has an unexpired one.
pub(super) fn device_claim<'h>(
    state: &AppState,
    headers: &'h HeaderMap,
) -> Option<DeviceClaim<'h>> {
    let value = Cookies::of(state).get_sized(headers, "device", MAX_DEVICE_COOKIE_BYTES)?;
    let (rest, tag) = value.rsplit_once('.')?;
    let (user_id, expires_at) = rest.rsplit_once('.')?;
    let expires_at: i64 = expires_at.parse().ok()?;
    (expires_at > state.server.now()).then_some(DeviceClaim {
        user_id,
        expires_at,
        tag,
    })
}

/// Whether the claim is a device cookie this server set for `user` under
/// the account's current password (MAC compared in constant time).
pub(super) fn device_of(state: &AppState, claim: &DeviceClaim<'_>, user: &User) -> bool {
    claim.user_id == user.id
        && device_tag(state, user, claim.expires_at)
            .is_some_and(|t| bool::from(t.as_bytes().ct_eq(claim.tag.as_bytes())))
}

pub(super) fn with_cookie(mut resp: Response, cookie: Option<HeaderValue>) -> Response {
    if let Some(c) = cookie {
        resp.headers_mut().append(header::SET_COOKIE, c);
    }
    resp
}
