// Plays the user at the browser for caddymcp's built-in authorization server: follows
// an authorization URL with a cookie jar, submits the sign-in form (and the consent
// form the first time), and returns the URL of the redirect that leaves the server's
// origin — the client's callback, with code (or error), state and iss.
export async function signIn(start, user, password) {
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
      if (loc.origin !== next.origin) return loc;
      next = loc; // a page of the server itself
      form = undefined;
      continue;
    }
    const page = await resp.text();
    if (resp.status !== 200) throw new Error(`step ${step}: ${resp.status}: ${page}`);
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
      throw new Error('neither a sign-in nor a consent page: ' + page);
    }
  }
  throw new Error('no redirect to the client after 6 steps');
}
