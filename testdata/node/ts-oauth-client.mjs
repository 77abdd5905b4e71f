// The TypeScript SDK's own OAuth client against an MCP URL behind caddymcp's built-in
// authorization server: discovery from the 401 (RFC 9728, RFC 8414), dynamic client
// registration, PKCE, the token request with the resource indicator, then MCP calls with
// the token. The browser is played by submitting the server's sign-in and consent forms.
//
//   [SIGN_IN_PROVIDER=<button text>] node ts-oauth-client.mjs <mcp url> <user> <password> [tool...]
//
// With SIGN_IN_PROVIDER the user signs in through that identity provider's button.
//
// Prints one JSON line: {signedIn, iss, tools, calls: {tool: {ok, text|error}}} or {fatal}.
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';
import { signIn } from './sign-in.mjs';

const [url, user, password, ...calls] = process.argv.slice(2);
const redirectUrl = 'http://127.0.0.1:38125/callback';
const out = {};
let clientInfo, tokens, verifier, code;

const provider = {
  get redirectUrl() { return redirectUrl; },
  get clientMetadata() {
    return {
      client_name: 'caddymcp e2e (TypeScript SDK)',
      redirect_uris: [redirectUrl],
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      token_endpoint_auth_method: 'none',
    };
  },
  clientInformation() { return clientInfo; },
  saveClientInformation(info) { clientInfo = info; },
  tokens() { return tokens; },
  saveTokens(t) { tokens = t; },
  saveCodeVerifier(v) { verifier = v; },
  codeVerifier() { return verifier; },
  async redirectToAuthorization(authorizationUrl) { code = await browse(authorizationUrl); },
};

// The "browser": sign in, then read the code from the redirect to the client.
async function browse(authorizationUrl) {
  const loc = await signIn(authorizationUrl, user, password, process.env.SIGN_IN_PROVIDER);
  if (!loc.href.startsWith(redirectUrl)) throw new Error('redirected to ' + loc.href + ', not the client');
  out.iss = loc.searchParams.get('iss');
  if (!loc.searchParams.get('code')) throw new Error('no code in ' + loc.href);
  return loc.searchParams.get('code');
}

async function connect() {
  const client = new Client({ name: 'caddymcp-e2e-ts-oauth', version: '1' });
  await client.connect(new StreamableHTTPClientTransport(new URL(url), { authProvider: provider }));
  return client;
}

let client;
try {
  try {
    client = await connect();
  } catch (e) {
    if (!(e instanceof UnauthorizedError)) throw e;
    const transport = new StreamableHTTPClientTransport(new URL(url), { authProvider: provider });
    await transport.finishAuth(code);
    client = await connect();
  }
  out.signedIn = Boolean(tokens && tokens.access_token);
  out.tools = (await client.listTools()).tools.map(t => t.name);
  out.calls = {};
  for (const name of calls) {
    try {
      const r = await client.callTool({ name, arguments: {} });
      out.calls[name] = { ok: !r.isError, text: JSON.stringify(r.content) };
    } catch (e) {
      out.calls[name] = { ok: false, error: String(e && e.message || e) };
    }
  }
} catch (e) {
  out.fatal = String(e && e.stack || e);
}
console.log(JSON.stringify(out));
if (client) await client.close().catch(() => {});
