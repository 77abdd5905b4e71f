// Plays the user at the browser for caddymcp's built-in authorization server: follows
// an authorization URL with a cookie jar, submits the sign-in form (and the consent
// form the first time), and returns the URL of the redirect that leaves the sites it
// signs in on — the client's callback, with code (or error), state and iss.
//
// With idp (the text of a "Sign in with <idp>" button) it signs in through that
// identity provider instead: follows the button, submits the provider's login and
// consent forms (npm oidc-provider's dev interactions: any password), comes back and
// approves the built-in server's consent page.
export async function signIn(start, user, password, idp) {
  const cookies = new Map(); // one jar, as a browser keeps per host
  let next = new URL(start);
  const sites = new Set([next.origin]);
  let form;
  let enteringIdP = false;
  for (let step = 0; step < 16; step++) {
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
      if (/max-age=0|max-age=-/i.test(c)) cookies.delete(pair.slice(0, i));
      else cookies.set(pair.slice(0, i), pair.slice(i + 1));
    }
    form = undefined;
    if (resp.status === 303 || resp.status === 302) {
      const loc = new URL(resp.headers.get('location'), next);
      // The provider's start (<issuer>/login/<name>, by button or because it is the only
      // way to sign in) sends the browser to the provider.
      if (idp && /\/login\/[a-z0-9-]+$/.test(next.pathname)) enteringIdP = true;
      if (enteringIdP) {
        sites.add(loc.origin);
        enteringIdP = false;
      }
      if (!sites.has(loc.origin)) return loc;
      next = loc;
      continue;
    }
    const page = await resp.text();
    if (resp.status !== 200) throw new Error(`step ${step}: ${resp.status}: ${page}`);
    const button = idp && page.match(new RegExp(`<a class="button" href="([^"]+)">Sign in with ${idp}</a>`));
    if (button) {
      next = new URL(button[1].replaceAll('&amp;', '&'), next);
      enteringIdP = true;
      continue;
    }
    next = new URL(page.match(/<form[^>]*action="([^"]+)"/)[1].replaceAll('&amp;', '&'), next);
    form = new URLSearchParams();
    const prompt = page.match(/name="prompt" value="(\w+)"/);
    if (prompt) { // the identity provider's own pages
      form.set('prompt', prompt[1]);
      if (prompt[1] === 'login') {
        form.set('login', user);
        form.set('password', password || 'any password');
      }
      continue;
    }
    for (const m of page.matchAll(/name="(request|csrf)" value="([^"]*)"/g)) form.set(m[1], m[2]);
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
  throw new Error('no redirect to the client after 16 steps');
}
