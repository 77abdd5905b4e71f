// A stand-in for the user's browser, for clients that open one to sign in (mcp-remote
// runs $BROWSER <url> through xdg-open): it signs in on caddymcp's built-in
// authorization server as $E2E_USER / $E2E_PASSWORD, approves the consent page, and
// follows the final redirect to the client's loopback callback. Exits 0 once the
// callback answered.
//
//   BROWSER="<node> testdata/node/fake-browser.mjs" E2E_USER=alice E2E_PASSWORD=… <client>
const [start] = process.argv.slice(2);
const user = process.env.E2E_USER, password = process.env.E2E_PASSWORD;
const cookies = new Map();
let next = new URL(start);
let form;
for (let step = 0; step < 6; step++) {
  const headers = { cookie: [...cookies].map(([k, v]) => k + '=' + v).join('; ') };
  let body;
  if (form) {
    headers['content-type'] = 'application/x-www-form-urlencoded';
    body = form.toString();
  }
  const resp = await fetch(next, { method: form ? 'POST' : 'GET', headers, body, redirect: 'manual' });
  for (const c of resp.headers.getSetCookie()) {
    const [pair] = c.split(';');
    const i = pair.indexOf('=');
    cookies.set(pair.slice(0, i), pair.slice(i + 1));
  }
  if (resp.status === 303 || resp.status === 302) {
    const loc = new URL(resp.headers.get('location'), next);
    if (loc.origin === next.origin) { // a page of the server itself
      next = loc;
      form = undefined;
      continue;
    }
    const cb = await fetch(loc); // the client's loopback callback
    process.stderr.write(`fake-browser: delivered the authorization response to ${loc.origin}: ${cb.status}\n`);
    process.exit(cb.ok ? 0 : 1);
  }
  const page = await resp.text();
  if (resp.status !== 200) {
    process.stderr.write(`fake-browser: step ${step}: ${resp.status}: ${page}\n`);
    process.exit(1);
  }
  form = new URLSearchParams();
  for (const m of page.matchAll(/name="(request|csrf)" value="([^"]*)"/g)) form.set(m[1], m[2]);
  next = new URL(page.match(/<form[^>]*action="([^"]+)"/)[1], next);
  if (page.includes('name="username"')) {
    form.set('action', 'login');
    form.set('username', user);
    form.set('password', password);
  } else if (page.includes('value="approve"')) {
    form.set('action', 'approve');
  } else {
    process.stderr.write('fake-browser: neither a sign-in nor a consent page:\n' + page + '\n');
    process.exit(1);
  }
}
process.stderr.write('fake-browser: no redirect to the client after 6 steps\n');
process.exit(1);
