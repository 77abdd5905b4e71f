// Package upstreamoauth is the gateway's side of OAuth towards an upstream MCP
// server's authorization server: discovering it (RFC 9728 protected-resource metadata,
// RFC 8414 / OpenID discovery), building the authorization request (code + PKCE S256 +
// resource, RFC 8707), and calling its token endpoint (authorization code, refresh,
// client credentials, token exchange RFC 8693) with the client authentication it
// wants (client_secret_basic/post, private_key_jwt RFC 7523, none). Plain functions over
// plain values and an *http.Client: no Caddy, no store. Every network answer is
// bounded, no redirect is followed, and every URL the metadata names that the gateway
// itself will call passes the caller's URL check first (the runtime_upstreams rules).
package upstreamoauth
