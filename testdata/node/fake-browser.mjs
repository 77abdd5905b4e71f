// A stand-in for the user's browser, for clients that open one to sign in (mcp-remote
// runs $BROWSER <url> through xdg-open): it signs in on caddymcp's built-in
// authorization server as $E2E_USER / $E2E_PASSWORD, approves the consent page, and
// delivers the authorization response to the client's loopback callback. Exits 0 once
// the callback answered. With E2E_IDP (a "Sign in with <E2E_IDP>" button's text) it
// signs in through that identity provider instead.
//
//   BROWSER="<node> testdata/node/fake-browser.mjs" E2E_USER=alice E2E_PASSWORD=… <client>
import { signIn } from './sign-in.mjs';

try {
  const callback = await signIn(process.argv[2], process.env.E2E_USER, process.env.E2E_PASSWORD, process.env.E2E_IDP);
  const resp = await fetch(callback);
  process.stderr.write(`fake-browser: delivered the authorization response to ${callback.origin}: ${resp.status}\n`);
  process.exit(resp.ok ? 0 : 1);
} catch (e) {
  process.stderr.write('fake-browser: ' + (e && e.message || e) + '\n');
  process.exit(1);
}
