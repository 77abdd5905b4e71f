// Package access authenticates callers (bearer JWTs of trusted issuers, API keys) and
// resolves what they may do (the policy's scopes and UI scopes). The gateway
// (mcp_gateway) and the registry's REST API (mcp_registry_api) share it, so one auth
// block means the same thing in both places.
package access

import "github.com/caddymcp/caddymcp/internal/policy"

// Config turns on authentication and authorization.
//
// With it, every request must carry a valid bearer token (a JWT of one of Issuers, or
// one of APIKeys), and is then authorized by the policy: groups → scopes → rules of
// {server, methods, tools, prompts, resources} for MCP traffic, and UI scopes
// (list/register/toggle/modify/health per server) for the registry's API. Anything no
// rule grants is denied.
type Config struct {
	// Issuers are the trusted token issuers (several at once: the company IdP, the
	// built-in authorization server, …).
	Issuers []Issuer `json:"issuers,omitempty"`

	// Resource is the gateway's public base URL, e.g. "https://mcp.example.com". It is
	// the origin of the resource_metadata URL in challenges (default: scheme://Host of
	// the request) and the base of the default audiences: Resource itself, and
	// Resource + prefix + "/<server path>/mcp" (or "/sse" for legacy servers) for each
	// server the registry routes, including servers registered at runtime (matched
	// against the live registry). Required when an issuer lists no audience.
	Resource string `json:"resource,omitempty"`

	// PolicyFile is a policy in the scopes.yml layout (group_mappings, UI-Scopes, and a
	// list of {server, methods, tools} rules per other top-level key). {env.*} and
	// {file.*} placeholders are resolved when the config loads.
	PolicyFile string `json:"policy_file,omitempty"`

	// Policy is an inline policy, instead of PolicyFile.
	Policy *policy.Config `json:"policy,omitempty"`

	// Strict makes housekeeping methods need a grant like any other. By default,
	// messages that expose no server data (initialize, ping, notifications/*,
	// logging/setLevel, server/discover) and the GET stream and DELETE of one's own
	// session are allowed to any caller with at least one rule on the server: real
	// clients send them unprompted (the MCP Inspector sends logging/setLevel right after
	// initialize), so a policy listing only tools would break them before the first
	// tool call. With strict, only the GET stream, the DELETE and the protocol
	// notifications notifications/cancelled, notifications/progress and
	// notifications/roots/list_changed keep that allowance.
	Strict bool `json:"strict,omitempty"`

	// AudienceScope decides where a token whose audience is one server's MCP URL (RFC
	// 8707 resource indicator) is accepted: "per_server" (default) on that server
	// only; "any" on every server the gateway routes. A token for Resource itself, or
	// for an audience an issuer lists explicitly, is accepted on every server either way.
	AudienceScope string `json:"audience_scope,omitempty"`

	// APIKeys are machine credentials (CI jobs, agents), stored as SHA-256 hashes. The
	// client sends the key as "Authorization: Bearer <key>" or "X-API-Key: <key>".
	APIKeys []APIKey `json:"api_keys,omitempty"`
}

// Issuer is one trusted token issuer.
type Issuer struct {
	// Issuer is compared byte for byte with the token's iss claim.
	Issuer string `json:"issuer"`
	// JWKSURL is used instead of OIDC / RFC 8414 discovery when set.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Audiences: the token's aud must contain one. Default: see Config.Resource.
	Audiences []string `json:"audiences,omitempty"`
	// GroupsClaim is the claim path of the caller's groups ("groups" by default;
	// "cognito:groups", "roles", "realm_access.roles", …).
	GroupsClaim string `json:"groups_claim,omitempty"`
	// Algorithms is the allow-list of signature algorithms (default RS256 PS256 ES256
	// EdDSA; HMAC and none cannot be configured).
	Algorithms []string `json:"algorithms,omitempty"`
}

// APIKey is one machine key: the lower- or upper-case hex SHA-256 of the key, and the
// groups the key stands for (resolved through the policy like a token's groups).
type APIKey struct {
	SHA256 string   `json:"sha256"`
	Groups []string `json:"groups,omitempty"`
}
