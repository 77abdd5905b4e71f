// Package authn validates OAuth bearer tokens (JWT access tokens) for the gateway's hot
// path. It knows nothing of Caddy: the mcp_gateway handler builds a Validator in
// Provision and calls it per request.
//
// # API
//
//	v, err := authn.NewValidator(ctx, authn.Config{
//		Audiences: []string{"https://gw.example.com/mcp/github/mcp"}, // RFC 8707 resource
//		Issuers: []authn.IssuerConfig{
//			{Issuer: "https://idp.example.com/realms/corp", GroupsClaim: "realm_access.roles"},
//			{Issuer: "https://cognito-idp.eu-west-1.amazonaws.com/eu-west-1_X", GroupsClaim: "cognito:groups"},
//		},
//	})
//	tok, err := authn.TokenFromHeader(r.Header) // or BearerToken(r.Header.Get("Authorization"))
//	p, err := v.Validate(r.Context(), tok)      // *principal.Caller: Subject, ClientID, Groups, TokenScopes, …
//
// # What a token must be
//
//   - at most Config.MaxTokenBytes (16 KiB) long, checked before anything else;
//   - a JWS in compact form: three base64url segments (no padding, no whitespace), a
//     JSON-object header with a string alg and no crit, a JSON-object payload;
//   - alg in the issuer's allow-list (default RS256 PS256 ES256 EdDSA); HS* and none can
//     not even be configured;
//   - iss byte-for-byte equal to a configured issuer; that issuer's keys, and only those,
//     are used;
//   - signed by a key of that issuer's JWKS whose kid equals the header's kid (a token
//     without kid is accepted only if exactly one key fits its alg), whose type fits the
//     alg (RSA for RS*/PS*, P-256 for ES256, …), whose "use" is absent or "sig", whose own
//     "alg", if any, equals the token's, and which is not an RSA key under 2048 bits;
//   - exp present and in the future, nbf and iat (if present) not in the future, each with
//     Config.Skew leeway (60 s);
//   - aud (string or array) containing one of the issuer's audiences;
//   - a sub or a client id.
//
// kid is only ever a map key: no path or URL is built from it.
//
// # Keys
//
// The JWKS URL is IssuerConfig.JWKSURL or found by discovery: first
// <issuer>/.well-known/openid-configuration, then the RFC 8414 path-inserted
// /.well-known/oauth-authorization-server<path>, then /.well-known/openid-configuration<path>;
// the document's issuer must equal the configured issuer. Every fetch is bounded by
// Config.FetchTimeout (10 s) and Config.MaxResponseBytes (1 MiB).
//
// JWKS are kept in a jwx v2 jwk.Cache, refreshed in the background every
// Config.RefreshInterval (15 min) for as long as the NewValidator context lives. A token
// with an unknown kid triggers one on-demand refetch, at most once per
// Config.MinRefetchInterval (10 s) per JWKS URL; discovery retries are limited the same way
// per issuer. A failed refresh keeps the keys already fetched. NewValidator starts every
// issuer's first fetch in the background and never blocks on the network.
//
// Config.KeyMemory carries the last good keys (and discovered JWKS URLs) from one
// Validator to the next, so a Caddy config reload during an IdP outage does not turn
// working authentication into 503s. The Caddy glue keeps one KeyMemory in a package-level
// variable and passes it to every Validator it builds.
//
// # Cache
//
// Validated tokens are remembered under SHA-256(token) until their exp, at most
// Config.CacheSize (10 000) entries, LRU-evicted, so a repeated token costs a hash and a
// map lookup. An entry is dropped as soon as its issuer's key material changes, so a key
// removed from a JWKS stops validating cached tokens at the next refresh. The *principal.Caller
// returned from the cache is shared between callers: never modify it.
//
// # Errors and HTTP responses
//
// Every error Validate and TokenFromHeader return matches one of three sentinels with
// errors.Is. Suggested mapping (RFC 6750 §3, RFC 9728 §5.1, MCP authorization spec):
//
//	ErrNoToken          401  WWW-Authenticate: Bearer resource_metadata="<PRM URL>", scope="<scopes>"
//	ErrInvalidToken     401  WWW-Authenticate: Bearer error="invalid_token",
//	                             error_description="<Reason(err)>", resource_metadata="<PRM URL>"
//	ErrKeysUnavailable  503  Retry-After: 10 (no WWW-Authenticate: the token may be fine;
//	                             a 401 would send the client through a pointless re-login)
//
// Reason(err) is one of the Reason* constants, safe to echo; err.Error() may carry log
// detail (a JWKS URL, why a key was unusable) and belongs in logs only. No error ever
// contains the token or unverified claim values.
package authn
