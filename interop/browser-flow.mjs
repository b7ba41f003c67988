// A person signing in to Gatehouse in a real headless browser: Debian's
// Chromium (/usr/bin/chromium, or $CHROMIUM), driven by playwright-core,
// with real typing and clicking. Driven by crates/gatehouse/tests/it/browser.rs.
//
//   node interop/browser-flow.mjs '{"authorize_url":"...","username":"...","password":"...","mode":"ok"}'
//
// (or the same JSON in $BROWSER_FLOW). With "screenshots":"DIR" (ok mode),
// every page on the way — sign-in, consent, sign-out and an error page — is
// also saved as DIR/<page>-<light|dark>-<phone|desktop>.png, and `shots`
// lists the files. With "listen":false (ok mode) the script does not listen
// on the redirect URI (something else does, as in docs/people.md) and only
// waits for the browser to get there. Modes:
//   ok              sign in, then click Allow on the consent page; the browser
//                   lands on the client's loopback redirect URI, where this
//                   script listens (the port and path come from the authorize
//                   URL's redirect_uri), like a native app would.
//   wrong-password  sign in with `password` (expected to be wrong).
//   no-csrf         remove the sign-in form's hidden `csrf` field, then sign
//                   in; afterwards open the authorize URL again to see whether
//                   the browser is signed in.
//   federated       sign in at an upstream identity provider instead: click
//                   "Sign in with <provider>" (the input's `provider`, when
//                   the page offers a choice), sign in on node-oidc-provider's
//                   development screens as `username` and click Continue
//                   (unless "provider_answer" is "abort", which answers
//                   access_denied there); then allow at Gatehouse, like ok.
//                   `provider_pages` lists the URLs the browser saw at the
//                   provider.
//
// Prints one JSON line on stdout:
//   {mode, labelled, signin_status, signin_origin, signin_text, alert, consent_text,
//    callback_url, final_url, status, text, cookies, after}
// where `signin_origin` is the Origin header Chromium sent with the
// sign-in POST, `labelled` says whether both fields were found by their labels,
// `signin_status` is the HTTP status of the POST /oauth/signin,
// `callback_url` is the full URL the loopback listener received (ok mode),
// `final_url`/`status`/`text` describe the page the browser ended on,
// `cookies` are the browser's cookies ({name, httpOnly, sameSite}, no values),
// and `after` (no-csrf mode) is "signin" or "consent": what the authorize URL
// shows when opened again. Exits non-zero on anything unexpected.

import http from 'node:http';
import { chromium } from 'playwright-core';

const input = JSON.parse(process.argv[2] ?? process.env.BROWSER_FLOW ?? 'null');
if (!input || !input.authorize_url || !input.username || input.password === undefined) {
  console.error('usage: node browser-flow.mjs \'{"authorize_url":..,"username":..,"password":..,"mode":"ok|wrong-password|no-csrf"}\'');
  process.exit(2);
}
const mode = input.mode ?? 'ok';
if (!['ok', 'wrong-password', 'no-csrf', 'federated'].includes(mode)) {
  console.error(`browser-flow.mjs: unknown mode ${mode}`);
  process.exit(2);
}
const executablePath = process.env.CHROMIUM ?? input.chromium ?? '/usr/bin/chromium';

function fail(message, err) {
  console.error(`browser-flow.mjs: ${message}`);
  if (err) console.error(err);
  process.exit(1);
}

const watchdog = setTimeout(() => fail('timed out'), Number(input.timeout_ms ?? 60_000));

// Every page in light and dark, at a phone's width and a desktop's.
const VARIANTS = [
  ['light', 'phone', { width: 390, height: 844 }],
  ['dark', 'phone', { width: 390, height: 844 }],
  ['light', 'desktop', { width: 1280, height: 800 }],
  ['dark', 'desktop', { width: 1280, height: 800 }],
];
const shots = [];
async function screenshots(page, name) {
  if (!input.screenshots) return;
  for (const [colorScheme, device, viewport] of VARIANTS) {
    await page.emulateMedia({ colorScheme });
    await page.setViewportSize(viewport);
    const path = `${input.screenshots}/${name}-${colorScheme}-${device}.png`;
    await page.screenshot({ path, fullPage: true });
    shots.push(path);
  }
  await page.emulateMedia({ colorScheme: 'light' });
  await page.setViewportSize({ width: 1280, height: 800 });
}

// The client's loopback redirect listener (ok mode): answers the first
// request on the redirect path and remembers its URL.
const redirect = new URL(new URL(input.authorize_url).searchParams.get('redirect_uri') ?? 'http://127.0.0.1:1/');
let callbackUrl = null;
let onCallback;
const callbackReceived = new Promise((resolve) => {
  onCallback = resolve;
});
let listener = null;
const listen = input.listen !== false;
if ((mode === 'ok' || mode === 'federated') && listen) {
  listener = http.createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    if (url.pathname !== redirect.pathname) {
      res.writeHead(404).end();
      return;
    }
    callbackUrl = url.href;
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    res.end('<!doctype html><title>Signed in</title><p>Gatehouse interop client: authorization response received.</p>');
    onCallback(url.href);
  });
  await new Promise((resolve, reject) => {
    listener.once('error', reject);
    listener.listen(Number(redirect.port), redirect.hostname, resolve);
  }).catch((err) => fail(`cannot listen on the redirect URI ${redirect.href}`, err));
}

// federated mode: from Gatehouse's sign-in page through the provider back to
// Gatehouse's consent page.
async function federated(page, first) {
  const gatehouse = new URL(input.authorize_url).origin;
  out.navigations = [];
  page.on('request', (r) => {
    if (r.isNavigationRequest()) out.navigations.push(r.url());
  });
  if (input.provider && new URL(page.url()).origin === gatehouse) {
    if (first?.status() !== 200) fail(`GET authorize answered ${first?.status()}: ${await page.content()}`);
    await page.getByRole('button', { name: `Sign in with ${input.provider}` }).click();
  }
  await page.waitForURL((u) => u.origin !== gatehouse, { timeout: 15_000 });
  out.provider_pages = [page.url()];
  if (input.provider_answer === 'abort') {
    // What a person cancelling at the provider amounts to: the provider
    // answers access_denied.
    await page.goto(`${page.url().replace(/\/$/, '')}/abort`).catch(() => {});
  } else {
    await page.locator('input[name="login"]').fill(input.username);
    await page.locator('input[name="password"]').fill(String(input.password));
    await page.getByRole('button', { name: 'Sign-in' }).click();
    await page.waitForLoadState('load');
    out.provider_pages.push(page.url());
    const proceed = page.getByRole('button', { name: 'Continue' });
    if ((await proceed.count()) > 0) await proceed.click();
  }
  await page.waitForURL((u) => u.origin === gatehouse || u.href.startsWith(redirect.origin + redirect.pathname), { timeout: 15_000 });
  await page.waitForLoadState('load');
}

// federated mode: Allow at Gatehouse (if asked) and the loopback redirect.
async function finish(page) {
  out.final_url = page.url();
  if (page.url().startsWith(redirect.origin + redirect.pathname)) {
    // Consent remembered: Gatehouse sent the browser straight back.
    out.callback_url = listen ? callbackUrl : page.url();
    return;
  }
  const allow = page.getByRole('button', { name: 'Allow' });
  if ((await allow.count()) === 0) {
    out.text = await page.locator('body').innerText();
    return;
  }
  out.consent_text = await page.locator('body').innerText();
  await Promise.all([listen ? callbackReceived : null, allow.click()]);
  await page.waitForURL((u) => u.href.startsWith(redirect.origin + redirect.pathname), { timeout: 15_000 });
  out.callback_url = listen ? callbackUrl : page.url();
  out.final_url = page.url();
}

const browser = await chromium
  .launch({ executablePath, headless: true, args: ['--no-sandbox'] })
  .catch((err) => fail(`cannot launch ${executablePath}`, err));

const out = { mode };
try {
  const context = await browser.newContext();
  const page = await context.newPage();

  const first = await page.goto(input.authorize_url);
  if (mode === 'federated') {
    await federated(page, first);
    await finish(page);
    process.stdout.write(`${JSON.stringify(out)}\n`);
    await browser.close().catch(() => {});
    listener?.close();
    clearTimeout(watchdog);
    process.exit(0);
  }
  if (first?.status() !== 200) fail(`GET authorize answered ${first?.status()}: ${await page.content()}`);
  if (mode === 'ok') await screenshots(page, 'signin');

  // The sign-in form, found as a person finds it: by its labels.
  let username = page.getByLabel(/user ?name/i);
  let password = page.getByLabel(/password/i);
  out.labelled = (await username.count()) === 1 && (await password.count()) === 1;
  if (!out.labelled) {
    // Still drive the form (the test asserts `labelled` and reports it).
    username = page.locator('#username');
    password = page.locator('#password');
  }
  if (mode === 'no-csrf') {
    const removed = await page.evaluate(() => {
      const fields = document.querySelectorAll('form input[name="csrf"]');
      fields.forEach((f) => f.remove());
      return fields.length;
    });
    if (removed === 0) fail('the sign-in form has no csrf field to remove');
  }
  await username.click();
  await username.pressSequentially(input.username);
  await password.click();
  await password.pressSequentially(input.password);

  const signinResponse = page.waitForResponse(
    (r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/oauth/signin',
  );
  await page.getByRole('button', { name: 'Sign in' }).click();
  const signin = await signinResponse;
  out.signin_status = signin.status();
  // What the browser sent as Origin (the server's CSRF check reads it).
  out.signin_origin = (await signin.request().headerValue('origin')) ?? null;
  await page.waitForLoadState('load');

  if (mode === 'ok') {
    const allow = page.getByRole('button', { name: 'Allow' });
    await allow.waitFor({ state: 'visible', timeout: 15_000 }).catch(async (err) =>
      fail(`no Allow button after signing in (status ${out.signin_status}, Origin sent: ${out.signin_origin}); page:\n${await page.content()}`, err),
    );
    out.consent_text = await page.locator('body').innerText();
    await screenshots(page, 'consent');
    await Promise.all([listen ? callbackReceived : null, allow.click()]);
    await page.waitForURL((u) => u.href.startsWith(redirect.origin + redirect.pathname), { timeout: 15_000 });
    await page.waitForLoadState('load');
    out.callback_url = listen ? callbackUrl : page.url();
  } else {
    out.signin_text = await page.locator('body').innerText();
    const alert = page.getByRole('alert');
    out.alert = (await alert.count()) > 0 ? await alert.first().innerText() : null;
  }

  out.final_url = page.url();
  out.text = await page.locator('body').innerText();
  out.status = out.signin_status;
  out.cookies = (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));

  if (mode === 'ok' && input.screenshots) {
    const issuer = new URL(input.authorize_url).origin;
    await page.goto(`${issuer}/oauth/signout`);
    await screenshots(page, 'signout');
    await page.goto(`${issuer}/oauth/authorize?client_id=nobody&response_type=code`);
    await screenshots(page, 'error');
    out.shots = shots;
  }

  if (mode === 'no-csrf') {
    // Is this browser signed in now? Open the authorization request again.
    const again = await page.goto(input.authorize_url);
    const consent = await page.getByRole('button', { name: 'Allow' }).count();
    const signinForm = await page.locator('form[action$="/oauth/signin"]').count();
    out.after = consent > 0 ? 'consent' : signinForm > 0 ? 'signin' : `other (${again?.status()})`;
    out.cookies = (await context.cookies()).map((c) => ({ name: c.name, httpOnly: c.httpOnly, sameSite: c.sameSite }));
  }
} catch (err) {
  fail(`browser flow failed (so far: ${JSON.stringify(out)})`, err);
} finally {
  await browser.close().catch(() => {});
  listener?.close();
  clearTimeout(watchdog);
}
process.stdout.write(`${JSON.stringify(out)}\n`);
process.exit(0);
