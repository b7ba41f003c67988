//! The pages people see: sign-in, consent, sign-out and errors. Plain
//! server-rendered HTML that works without JavaScript (none is sent),
//! accessible (a language, labels tied to inputs, a logical focus order,
//! visible focus, text contrast above WCAG AA), and locked down: no framing
//! (clickjacking), a content security policy that allows nothing but the
//! page's own stylesheet, no referrer to other sites, never cached.
//!
//! Written by hand rather than with a template engine: five small pages,
//! and every interpolated value goes through [`esc`].

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;
use std::sync::OnceLock;

/// One stylesheet for every page, allowed by its hash in the CSP.
const STYLE: &str = "\
:root{color-scheme:light dark;--fg:#1a1a1a;--bg:#f4f5f7;--card:#fff;--muted:#4a4f57;--accent:#0b57d0;--line:#c9ccd1;--warn:#8a2a00}\
@media (prefers-color-scheme:dark){:root{--fg:#ececec;--bg:#15171a;--card:#202328;--muted:#b4b9c1;--accent:#8ab4ff;--line:#454a52;--warn:#ffb68a}}\
*{box-sizing:border-box}\
body{margin:0;font:16px/1.5 system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;color:var(--fg);background:var(--bg)}\
main{max-width:26rem;margin:8vh auto;padding:2rem;background:var(--card);border:1px solid var(--line);border-radius:12px}\
h1{font-size:1.4rem;margin:0 0 1rem}\
p{margin:.5rem 0}\
.muted{color:var(--muted);font-size:.9rem}\
label{display:block;font-weight:600;margin:1rem 0 .25rem}\
input{width:100%;padding:.6rem .7rem;font:inherit;color:inherit;background:transparent;border:1px solid var(--line);border-radius:8px}\
button{font:inherit;font-weight:600;padding:.6rem 1.2rem;border-radius:8px;border:1px solid var(--accent);cursor:pointer}\
button.primary{background:var(--accent);color:var(--card)}\
button.secondary{background:transparent;color:var(--accent)}\
.actions{display:flex;gap:.75rem;margin-top:1.5rem;flex-wrap:wrap}\
:focus-visible{outline:3px solid var(--accent);outline-offset:2px}\
[role=alert]{color:var(--warn);font-weight:600}\
.warn{color:var(--warn);font-weight:600}\
.from{font-size:1.1rem}\
.badge{display:inline-block;font-size:.8rem;font-weight:700;color:var(--warn);border:1px solid var(--warn);border-radius:4px;padding:0 .4rem}\
ul{padding-left:1.2rem}\
li{margin:.25rem 0}\
.site{font-weight:700;margin:0 0 1.25rem}\
.site span{font-weight:400}\
h2{font-size:1rem;margin:1.25rem 0 .25rem}\
a{color:var(--accent)}\
code{font-size:.9em;word-break:break-all}";

/// HTML-escapes text for element content and double-quoted attributes.
pub fn esc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn csp() -> &'static HeaderValue {
    static CSP: OnceLock<HeaderValue> = OnceLock::new();
    CSP.get_or_init(|| {
        use aws_lc_rs::digest;
        use base64::Engine;
        let hash = base64::engine::general_purpose::STANDARD
            .encode(digest::digest(&digest::SHA256, STYLE.as_bytes()).as_ref());
        // `form-action` is left out on purpose: Chromium applies it to the
        // redirect that follows a form post, and the consent form's redirect
        // goes to the client.
        HeaderValue::from_str(&format!(
            "default-src 'none'; style-src 'sha256-{hash}'; frame-ancestors 'none'; base-uri 'none'"
        ))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"))
    })
}

/// A whole page with the security headers every page carries.
pub fn page(status: StatusCode, title: &str, body: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<meta name=\"referrer\" content=\"same-origin\">\
<title>{} · Gatehouse</title><style>{STYLE}</style></head>\
<body><main>{body}</main></body></html>\n",
        esc(title)
    );
    let mut resp = Response::new(axum::body::Body::from(html));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(header::CONTENT_SECURITY_POLICY, csp().clone());
    h.insert(
        header::REFERRER_POLICY,
        // `same-origin`, not `no-referrer`: under `no-referrer` Chromium
        // sends `Origin: null` with the page's own form posts, which the
        // CSRF check must refuse; nothing leaves for another origin either way.
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    resp
}

/// Hidden fields every form carries: the CSRF token and the authorization
/// request being answered.
fn hidden(csrf: &str, request: Option<&str>) -> String {
    let mut out = format!(
        "<input type=\"hidden\" name=\"csrf\" value=\"{}\">",
        esc(csrf)
    );
    if let Some(r) = request {
        out.push_str(&format!(
            "<input type=\"hidden\" name=\"request\" value=\"{}\">",
            esc(r)
        ));
    }
    out
}

pub struct SignIn<'a> {
    pub action: &'a str,
    pub csrf: &'a str,
    pub request: &'a str,
    pub client_name: &'a str,
    /// Nobody the operator trusts vouches for the client (marked unverified).
    pub unverified: bool,
    /// The name typed last time (after a failure).
    pub username: &'a str,
    pub alert: Option<&'a str>,
    /// Who runs this server (`[people] site_name`) and the issuer's host:
    /// where the password is going, in plain sight.
    pub site_name: &'a str,
    pub issuer_host: &'a str,
    /// The forgotten-password line, and where it links to.
    pub forgot_password: &'a str,
    pub forgot_password_url: Option<&'a str>,
    /// Whether the name-and-password form is shown (`[people] local_accounts`).
    pub local_accounts: bool,
    /// Upstream identity providers: (id, name) for a button each.
    pub providers: &'a [(String, String)],
    /// Where the provider buttons post.
    pub federate_action: &'a str,
}

/// The operator's name and the host the person is on, above each page's
/// heading.
fn site(name: &str, host: &str) -> String {
    format!(
        "<p class=\"site\">{} <span class=\"muted\">· {}</span></p>",
        esc(name),
        esc(host)
    )
}

pub fn sign_in(status: StatusCode, p: &SignIn<'_>) -> Response {
    let alert = p
        .alert
        .map(|a| format!("<p role=\"alert\" id=\"signin-error\">{}</p>", esc(a)))
        .unwrap_or_default();
    let described = if p.alert.is_some() {
        " aria-describedby=\"signin-error\""
    } else {
        ""
    };
    let forgot = match p.forgot_password_url {
        Some(url) => format!(
            "<a href=\"{}\" rel=\"noreferrer\">{}</a>",
            esc(url),
            esc(p.forgot_password)
        ),
        None => esc(p.forgot_password),
    };
    // One form per provider, each carrying the request and the CSRF token.
    let providers: String = p
        .providers
        .iter()
        .map(|(id, name)| {
            format!(
                "<form method=\"post\" action=\"{action}\">{hidden}\
<input type=\"hidden\" name=\"provider\" value=\"{id}\">\
<div class=\"actions\"><button class=\"secondary\" type=\"submit\">Sign in with {name}</button></div></form>",
                action = esc(p.federate_action),
                hidden = hidden(p.csrf, Some(p.request)),
                id = esc(id),
                name = esc(name),
            )
        })
        .collect();
    let local = if p.local_accounts {
        format!(
            "<form method=\"post\" action=\"{action}\">{hidden}\
<label for=\"username\">User name</label>\
<input id=\"username\" name=\"username\" autocomplete=\"username\" autocapitalize=\"none\" spellcheck=\"false\" required autofocus value=\"{user}\"{described}>\
<label for=\"password\">Password</label>\
<input id=\"password\" name=\"password\" type=\"password\" autocomplete=\"current-password\" required{described}>\
<div class=\"actions\"><button class=\"primary\" type=\"submit\">Sign in</button>\
<button class=\"secondary\" type=\"submit\" name=\"cancel\" value=\"cancel\" formnovalidate>Cancel</button></div>\
</form><p class=\"muted\">{forgot}</p>",
            action = esc(p.action),
            hidden = hidden(p.csrf, Some(p.request)),
            user = esc(p.username),
        )
    } else {
        format!(
            "<form method=\"post\" action=\"{action}\">{hidden}\
<div class=\"actions\"><button class=\"secondary\" type=\"submit\" name=\"cancel\" value=\"cancel\">Cancel</button></div></form>",
            action = esc(p.action),
            hidden = hidden(p.csrf, Some(p.request)),
        )
    };
    let or = if p.local_accounts && !p.providers.is_empty() {
        "<p class=\"muted\">or</p>"
    } else {
        ""
    };
    let body = format!(
        "{site}<h1>Sign in</h1>\
<p class=\"muted\">to continue to <strong>{client}</strong>{unverified}</p>{alert}{providers}{or}{local}",
        site = site(p.site_name, p.issuer_host),
        client = esc(p.client_name),
        unverified = if p.unverified {
            " <span class=\"badge\">unverified</span>"
        } else {
            ""
        },
    );
    page(status, "Sign in", &body)
}

pub struct Consent<'a> {
    pub action: &'a str,
    pub csrf: &'a str,
    pub request: &'a str,
    pub user_name: &'a str,
    pub client_name: &'a str,
    pub client_id: &'a str,
    pub self_registered: bool,
    /// Nobody the operator trusts vouches for the client.
    pub unverified: bool,
    /// The host of the client's metadata document, when it has one.
    pub document_host: Option<&'a str>,
    /// Every redirect URI of the client is on loopback.
    pub local_only: bool,
    pub redirect_host: &'a str,
    /// Each scope with what it means in words, if anyone said.
    pub scopes: &'a [(String, Option<String>)],
    /// Each MCP server by name, with its URL.
    pub resources: &'a [(String, String)],
    /// How long access lasts at most, in words ("90 days").
    pub lasts: &'a str,
    pub signout: &'a str,
    /// The MAC over what this page shows (see `people::shown`), posted back
    /// with the answer.
    pub shown: &'a str,
    /// Said above the request, when it is shown again.
    pub alert: Option<&'a str>,
}

pub fn consent(p: &Consent<'_>) -> Response {
    let unverified = if p.unverified {
        " <span class=\"badge\">unverified</span>"
    } else {
        ""
    };
    let who = match (p.document_host, p.unverified) {
        (Some(host), false) => format!(
            "This application is described at <strong>{}</strong>, a site this server trusts.",
            esc(host)
        ),
        (Some(host), true) => format!(
            "This application describes itself at <strong>{}</strong>; Gatehouse has not verified who runs that site.",
            esc(host)
        ),
        (None, _) if p.self_registered => {
            "This application registered itself; Gatehouse has not verified who runs it.".into()
        }
        (None, _) => "This application was registered by an administrator.".into(),
    };
    let from = p
        .document_host
        .map(|h| format!("<p class=\"from\">from <strong>{}</strong></p>", esc(h)))
        .unwrap_or_default();
    let local = if p.local_only && p.self_registered {
        "<p class=\"warn\">It returns only to this computer (localhost): allow it only if you started it yourself just now.</p>"
    } else {
        ""
    };
    let scopes = if p.scopes.is_empty() {
        "<li>no particular permissions (scopes)</li>".to_string()
    } else {
        p.scopes
            .iter()
            .map(|(s, d)| match d {
                Some(d) => format!(
                    "<li>{} <span class=\"muted\">(<code>{}</code>)</span></li>",
                    esc(d),
                    esc(s)
                ),
                None => format!("<li><code>{}</code></li>", esc(s)),
            })
            .collect()
    };
    let resources: String = p
        .resources
        .iter()
        .map(|(name, url)| {
            format!(
                "<li><strong>{}</strong> <span class=\"muted\">(<code>{}</code>)</span></li>",
                esc(name),
                esc(url)
            )
        })
        .collect();
    let alert = p
        .alert
        .map(|a| format!("<p role=\"alert\">{}</p>", esc(a)))
        .unwrap_or_default();
    let body = format!(
        "<h1>Allow access?</h1>{alert}\
<p><strong>{client}</strong>{unverified} wants to act as <strong>{user}</strong>.</p>{from}{local}\
<p class=\"muted\">{who} Client id <code>{client_id}</code>; after you answer, you return to <code>{host}</code>.</p>\
<h2>It asks to</h2><ul>{scopes}</ul>\
<h2>at the MCP server</h2><ul>{resources}</ul>\
<p class=\"muted\">Access lasts at most {lasts} from your sign-in, unless it is revoked sooner.</p>\
<form method=\"post\" action=\"{action}\">{hidden}\
<input type=\"hidden\" name=\"shown\" value=\"{shown}\">\
<div class=\"actions\">\
<button class=\"primary\" type=\"submit\" name=\"decision\" value=\"allow\">Allow</button>\
<button class=\"secondary\" type=\"submit\" name=\"decision\" value=\"deny\">Deny</button>\
</div></form>\
<p class=\"muted\">Not {user}? <a href=\"{signout}\">Sign out</a>.</p>",
        client = esc(p.client_name),
        user = esc(p.user_name),
        client_id = esc(p.client_id),
        host = esc(p.redirect_host),
        action = esc(p.action),
        hidden = hidden(p.csrf, Some(p.request)),
        signout = esc(p.signout),
        shown = esc(p.shown),
        lasts = esc(p.lasts),
    );
    let status = if p.alert.is_some() {
        StatusCode::CONFLICT
    } else {
        StatusCode::OK
    };
    page(status, "Allow access?", &body)
}

/// What signing out does not do, said on the sign-out pages.
const APPS_KEEP_ACCESS: &str = "<p class=\"muted\">Applications you allowed keep their access \
until it expires or is withdrawn: ask your administrator to withdraw it \
(<code>gatehouse user revoke</code>).</p>";

pub fn sign_out(action: &str, csrf: &str, user_name: Option<&str>) -> Response {
    let body = match user_name {
        Some(name) => format!(
            "<h1>Sign out</h1><p>You are signed in as <strong>{}</strong>.</p>{APPS_KEEP_ACCESS}\
<form method=\"post\" action=\"{}\">{}<div class=\"actions\">\
<button class=\"primary\" type=\"submit\">Sign out</button>\
<button class=\"secondary\" type=\"submit\" name=\"cancel\" value=\"cancel\">Cancel</button></div></form>",
            esc(name),
            esc(action),
            hidden(csrf, None)
        ),
        None => "<h1>Signed out</h1><p>You are not signed in at Gatehouse.</p>".to_string(),
    };
    page(StatusCode::OK, "Sign out", &body)
}

pub fn signed_out() -> Response {
    page(
        StatusCode::OK,
        "Signed out",
        &format!(
            "<h1>Signed out</h1><p>You are signed out of Gatehouse. You can close this window.</p>{APPS_KEEP_ACCESS}"
        ),
    )
}

/// Sign-out cancelled: nothing changed.
pub fn still_signed_in(user_name: &str) -> Response {
    page(
        StatusCode::OK,
        "Still signed in",
        &format!(
            "<h1>Still signed in</h1><p>You are still signed in as <strong>{}</strong>. You can close this window.</p>",
            esc(user_name)
        ),
    )
}

/// Sign-in cancelled for an application that registered itself: said
/// here, with a link back, never an automatic redirect.
pub fn cancelled(link: &str, host: &str) -> Response {
    page(
        StatusCode::OK,
        "Cancelled",
        &format!(
            "<h1>Cancelled</h1><p>You did not sign in. Nothing was shared with the application.</p>\
<p><a href=\"{}\" rel=\"noreferrer\">Return to {}</a></p>",
            esc(link),
            esc(host)
        ),
    )
}

/// A reference for one error page, in the page and in the log line that
/// says what happened, so a person can quote it and an operator find it.
fn error_reference(status: StatusCode, message: &str) -> String {
    let id = format!("e_{}", gatehouse_oauth::crypto::random_base62(10));
    tracing::info!(reference = %id, status = status.as_u16(), detail = ?message, "error page shown");
    id
}

/// The error page: what went wrong, in words, a way back, and a reference
/// that is also in the log; never a redirect.
pub fn error(status: StatusCode, message: &str) -> Response {
    let reference = error_reference(status, message);
    let body = format!(
        "<h1>This did not work</h1><p role=\"alert\">{}</p>\
<p class=\"muted\">Nothing was shared with the application. Go back to it and try again.</p>\
<p class=\"muted\">If it happens again, give your administrator this reference: <code>{reference}</code></p>",
        esc(message)
    );
    page(status, "Error", &body)
}

/// An error for an application the person has not approved: shown here,
/// with a link back to the application (at `link`, on `host`) that the
/// person may follow — never an automatic redirect, which would bounce a
/// signed-in person to any address anyone registered.
pub fn error_with_link(status: StatusCode, message: &str, link: &str, host: &str) -> Response {
    let reference = error_reference(status, message);
    let body = format!(
        "<h1>This did not work</h1><p role=\"alert\">{}</p>\
<p class=\"muted\">Nothing was shared with the application. It is not one you have approved, \
so Gatehouse does not send you back to it by itself.</p>\
<p><a href=\"{}\" rel=\"noreferrer\">Return to {}</a></p>\
<p class=\"muted\">Reference for your administrator: <code>{reference}</code></p>",
        esc(message),
        esc(link),
        esc(host)
    );
    page(status, "Error", &body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_interpolated_is_escaped() {
        assert_eq!(
            esc("<a href=\"x\">'&'</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;"
        );
    }

    #[test]
    fn the_stylesheet_is_allowed_by_its_hash_and_nothing_else() {
        let v = csp().to_str().unwrap();
        assert!(
            v.starts_with("default-src 'none'; style-src 'sha256-"),
            "{v}"
        );
        assert!(v.contains("frame-ancestors 'none'"));
    }
}
