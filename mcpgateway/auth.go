package mcpgateway

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/jsonrpc"
	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

// AuthConfig turns on authentication and authorization in mcp_gateway. Absent, the
// gateway proxies every request as before.
//
// With it, every request routed to a server must carry a valid bearer token (a JWT of
// one of Issuers, or one of APIKeys), and is then authorized per JSON-RPC message by
// the policy: groups → scopes → rules of {server, methods, tools, prompts, resources}.
// Anything no rule grants is denied.
type AuthConfig struct {
	// Issuers are the trusted token issuers (several at once: the company IdP, the
	// built-in authorization server, …).
	Issuers []AuthIssuer `json:"issuers,omitempty"`

	// Resource is the gateway's public base URL, e.g. "https://mcp.example.com". It is
	// the origin of the resource_metadata URL in challenges (default: scheme://Host of
	// the request) and the base of the default audiences: Resource itself, and
	// Resource + prefix + "/<server path>/mcp" (or "/sse" for legacy servers) for each
	// server the registry holds when the config is loaded. Servers registered later are
	// reached with a token whose audience is Resource (or an issuer's explicit list)
	// until the next config load. Required when an issuer lists no audience.
	Resource string `json:"resource,omitempty"`

	// PolicyFile is a policy in the scopes.yml layout (group_mappings, UI-Scopes, and a
	// list of {server, methods, tools} rules per other top-level key). {env.*} and
	// {file.*} placeholders are resolved when the config loads.
	PolicyFile string `json:"policy_file,omitempty"`

	// Policy is an inline policy, instead of PolicyFile.
	Policy *policy.Config `json:"policy,omitempty"`

	// APIKeys are machine credentials (CI jobs, agents), stored as SHA-256 hashes. The
	// client sends the key as "Authorization: Bearer <key>" or "X-API-Key: <key>".
	APIKeys []AuthAPIKey `json:"api_keys,omitempty"`
}

// AuthIssuer is one trusted token issuer.
type AuthIssuer struct {
	// Issuer is compared byte for byte with the token's iss claim.
	Issuer string `json:"issuer"`
	// JWKSURL is used instead of OIDC / RFC 8414 discovery when set.
	JWKSURL string `json:"jwks_url,omitempty"`
	// Audiences: the token's aud must contain one. Default: see AuthConfig.Resource.
	Audiences []string `json:"audiences,omitempty"`
	// GroupsClaim is the claim path of the caller's groups ("groups" by default;
	// "cognito:groups", "roles", "realm_access.roles", …).
	GroupsClaim string `json:"groups_claim,omitempty"`
	// Algorithms is the allow-list of signature algorithms (default RS256 PS256 ES256
	// EdDSA; HMAC and none cannot be configured).
	Algorithms []string `json:"algorithms,omitempty"`
}

// AuthAPIKey is one machine key: the lower- or upper-case hex SHA-256 of the key, and
// the groups the key stands for (resolved through the policy like a token's groups).
type AuthAPIKey struct {
	SHA256 string   `json:"sha256"`
	Groups []string `json:"groups,omitempty"`
}

// keyMemory carries the last good JWKS from one Validator to the next across config
// reloads, so an IdP outage during a reload keeps authentication working.
var keyMemory = authn.NewKeyMemory()

// maxGrantCache bounds the cache of resolved grants (keyed by the group set).
const maxGrantCache = 4096

// authState is the provisioned form of AuthConfig.
type authState struct {
	validator *authn.Validator // nil when only API keys are configured
	policy    *policy.Policy
	// single grants exactly one scope per pseudo-group named after the scope, to find
	// which scopes would allow a call (for the scope="…" of a 403).
	single       *policy.Policy
	scopeNames   []string                   // sorted
	scopeServers map[string]map[string]bool // scope → servers it has rules for ("" = all)
	resource     string
	apiKeys      map[[32]byte]*authn.Principal
	grants       sync.Map // group-set key → *who
	grantCount   atomic.Int64
	logger       *zap.Logger
}

// who is an authenticated caller with its resolved grant.
type who struct {
	principal *authn.Principal
	grant     policy.Grant
	scopes    []string
}

// provisionAuth builds the auth state; servers are the registry's servers at load time.
func (a *AuthConfig) provision(ctx context.Context, logger *zap.Logger, prefix string, servers []*mcpregistry.Server) (*authState, error) {
	st := &authState{
		resource: strings.TrimRight(a.Resource, "/"),
		apiKeys:  map[[32]byte]*authn.Principal{},
		logger:   logger,
	}
	if a.Resource != "" && !strings.HasPrefix(a.Resource, "https://") && !strings.HasPrefix(a.Resource, "http://") {
		return nil, fmt.Errorf("auth: resource %q must be an absolute http(s) URL", a.Resource)
	}

	// Policy.
	var cfg *policy.Config
	switch {
	case a.PolicyFile != "" && a.Policy != nil:
		return nil, fmt.Errorf("auth: set policy_file or an inline policy, not both")
	case a.PolicyFile != "":
		path := caddy.NewReplacer().ReplaceKnown(a.PolicyFile, "")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth: reading policy_file: %v", err)
		}
		if cfg, err = policy.ParseYAML(data); err != nil {
			return nil, fmt.Errorf("auth: policy_file %s: %v", path, err)
		}
	case a.Policy != nil:
		cfg = a.Policy
	default:
		cfg = &policy.Config{} // deny everything
		logger.Warn("mcp_gateway auth has no policy: every request will be denied")
	}
	p, warnings, err := policy.Compile(cfg)
	if err != nil {
		return nil, fmt.Errorf("auth: policy: %v", err)
	}
	for _, w := range warnings {
		logger.Warn("policy", zap.String("warning", w))
	}
	st.policy = p
	singleCfg := &policy.Config{Scopes: cfg.Scopes, GroupMappings: map[string][]string{}}
	st.scopeServers = map[string]map[string]bool{}
	for name, rules := range cfg.Scopes {
		singleCfg.GroupMappings[name] = []string{name}
		st.scopeNames = append(st.scopeNames, name)
		set := map[string]bool{}
		for _, r := range rules {
			s := strings.Trim(r.Server, "/")
			if s == "*" || s == "all" {
				s = ""
			}
			set[s] = true
		}
		st.scopeServers[name] = set
	}
	sort.Strings(st.scopeNames)
	if st.single, _, err = policy.Compile(singleCfg); err != nil {
		return nil, fmt.Errorf("auth: policy: %v", err)
	}

	// API keys.
	for i, k := range a.APIKeys {
		raw, err := hex.DecodeString(k.SHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("auth: api key %d: want the key's SHA-256 as 64 hex digits", i+1)
		}
		var h [32]byte
		copy(h[:], raw)
		if _, dup := st.apiKeys[h]; dup {
			return nil, fmt.Errorf("auth: api key %d is listed twice", i+1)
		}
		st.apiKeys[h] = &authn.Principal{Subject: "api-key:" + strings.ToLower(k.SHA256[:12]), Groups: slices.Clone(k.Groups)}
	}

	// Token validator.
	if len(a.Issuers) > 0 {
		var defaults []string
		if st.resource != "" {
			defaults = append(defaults, st.resource)
			for _, s := range servers {
				seg := s.Path
				if seg == "" {
					seg = s.Name
				}
				ep := "/mcp"
				if s.Transport == mcpregistry.TransportSSE {
					ep = "/sse"
				}
				defaults = append(defaults, st.resource+prefix+"/"+strings.Trim(seg, "/")+ep)
			}
		}
		ac := authn.Config{
			Audiences: defaults,
			KeyMemory: keyMemory,
			OnFetchError: func(url string, err error) {
				logger.Warn("fetching token signing keys failed", zap.String("url", url), zap.Error(err))
			},
		}
		for _, is := range a.Issuers {
			if len(is.Audiences) == 0 && len(defaults) == 0 {
				return nil, fmt.Errorf("auth: issuer %q lists no audience and no resource is set", is.Issuer)
			}
			ac.Issuers = append(ac.Issuers, authn.IssuerConfig{
				Issuer:      is.Issuer,
				JWKSURL:     is.JWKSURL,
				Audiences:   is.Audiences,
				GroupsClaim: is.GroupsClaim,
				Algorithms:  is.Algorithms,
			})
		}
		v, err := authn.NewValidator(ctx, ac)
		if err != nil {
			return nil, fmt.Errorf("auth: %v", err)
		}
		st.validator = v
	}
	if st.validator == nil && len(st.apiKeys) == 0 {
		return nil, fmt.Errorf("auth: configure at least one issuer or api_key")
	}
	return st, nil
}

// resolve returns the caller's grant, cached per group set.
func (st *authState) resolve(p *authn.Principal) *who {
	key := strings.Join(p.Groups, "\n")
	if v, ok := st.grants.Load(key); ok {
		c := v.(*who)
		return &who{principal: p, grant: c.grant, scopes: c.scopes}
	}
	g := st.policy.Resolve(p.Groups)
	c := &who{grant: g, scopes: g.ScopeNames()}
	if st.grantCount.Load() < maxGrantCache {
		if _, loaded := st.grants.LoadOrStore(key, c); !loaded {
			st.grantCount.Add(1)
		}
	}
	return &who{principal: p, grant: g, scopes: c.scopes}
}

// anyOnServer reports whether one of the caller's scopes has a rule for server.
func (st *authState) anyOnServer(w *who, server string) bool {
	server = strings.Trim(server, "/")
	for _, sc := range w.scopes {
		if set := st.scopeServers[sc]; set[""] || set[server] {
			return true
		}
	}
	return false
}

// scopesFor lists the scopes with a rule for server (the scope="…" of a 401).
func (st *authState) scopesFor(server string) []string {
	server = strings.Trim(server, "/")
	var out []string
	for _, sc := range st.scopeNames {
		if set := st.scopeServers[sc]; set[""] || set[server] {
			out = append(out, sc)
		}
	}
	return out
}

// scopesAllowing lists the scopes that would allow the call (the scope="…" of a 403).
func (st *authState) scopesAllowing(server, method, name string) []string {
	var out []string
	for _, sc := range st.scopeNames {
		if ok, _ := st.single.Resolve([]string{sc}).Allow(server, method, name); ok {
			out = append(out, sc)
		}
	}
	return out
}

// prmURL is the protected resource metadata URL of the MCP path.
func (st *authState) prmURL(r *http.Request, mcpPath string) string {
	origin := st.resource
	if origin == "" {
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		origin = scheme + "://" + r.Host
	}
	return origin + "/.well-known/oauth-protected-resource" + mcpPath
}

// headerValue makes s safe inside a quoted-string of WWW-Authenticate.
func headerValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

// authenticate checks the request's credentials. It answers the request itself (401,
// 503) and returns nil when the request must stop.
func (st *authState) authenticate(w http.ResponseWriter, r *http.Request, server *mcpregistry.Server, mcpPath string, repl *caddy.Replacer) *who {
	composite := server.GatewayTokenHeader == mcpregistry.GatewayTokenXAuthorization
	p, err := st.principal(r, composite)
	if err != nil {
		prm := headerValue(st.prmURL(r, mcpPath))
		switch {
		case errors.Is(err, authn.ErrKeysUnavailable):
			st.logger.Warn("token signing keys unavailable", zap.String("server", server.Name), zap.Error(err))
			w.Header().Set("Retry-After", "10")
			writeRPCError(w, http.StatusServiceUnavailable, "", codeAuthUnavailable, "the token issuer's signing keys are unavailable; retry later")
		case errors.Is(err, authn.ErrNoToken):
			w.Header().Set("WWW-Authenticate", `Bearer resource_metadata="`+prm+`", scope="`+headerValue(strings.Join(st.scopesFor(server.Name), " "))+`"`)
			writeRPCError(w, http.StatusUnauthorized, "", codeUnauthorized, "authentication required: send a bearer token")
		default:
			reason := authn.Reason(err)
			if reason == "" {
				reason = authn.ReasonMalformed
			}
			st.logger.Debug("rejected token", zap.String("server", server.Name), zap.Error(err))
			w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token", error_description="`+headerValue(reason)+`", resource_metadata="`+prm+`"`)
			writeRPCError(w, http.StatusUnauthorized, "", codeUnauthorized, "invalid token: "+reason)
		}
		return nil
	}
	c := st.resolve(p)
	repl.Set("http.mcp.auth.subject", p.Subject)
	repl.Set("http.mcp.auth.groups", strings.Join(p.Groups, ","))
	repl.Set("http.mcp.auth.client_id", p.ClientID)
	repl.Set(callerKey, &callerIdentity{subject: p.Subject, groups: p.Groups})
	// No token passthrough: the gateway's credentials never reach an upstream. In
	// composite mode the client's own Authorization is meant for the upstream.
	if composite {
		r.Header.Del("X-Authorization")
	} else {
		r.Header.Del("Authorization")
	}
	r.Header.Del("X-Api-Key")
	return c
}

var errUnknownAPIKey = &authn.InvalidTokenError{Reason: authn.ReasonMalformed}

// principal finds the caller: an X-API-Key, else the Authorization bearer token (with
// composite, the X-Authorization one) as an API key or a JWT. Tokens in the query string
// are never looked at.
func (st *authState) principal(r *http.Request, composite bool) (*authn.Principal, error) {
	if vals := r.Header.Values("X-Api-Key"); len(vals) > 0 {
		if len(vals) == 1 {
			if p := st.apiKeys[sha256.Sum256([]byte(vals[0]))]; p != nil {
				return p, nil
			}
		}
		return nil, errUnknownAPIKey
	}
	h := r.Header
	if composite {
		h = http.Header{"Authorization": r.Header.Values("X-Authorization")}
	}
	tok, err := authn.TokenFromHeader(h)
	if err != nil {
		return nil, err
	}
	if len(st.apiKeys) > 0 {
		if p := st.apiKeys[sha256.Sum256([]byte(tok))]; p != nil {
			return p, nil
		}
	}
	if st.validator == nil {
		return nil, errUnknownAPIKey
	}
	return st.validator.Validate(r.Context(), tok)
}

// notificationsForAnyone are protocol plumbing a client may send on any server it may
// use at all, even if its scopes do not list them.
var notificationsForAnyone = []string{"notifications/cancelled", "notifications/progress", "notifications/roots/list_changed"}

// authorize checks every message of an inspected POST body. Responses (answers to
// server requests) always pass; requests and notifications need their method (and
// tool/prompt/resource) granted, except notificationsForAnyone. It answers 403 and
// returns false on the first denied message.
func (st *authState) authorize(w http.ResponseWriter, r *http.Request, c *who, server *mcpregistry.Server, mcpPath string, in *jsonrpc.Inspection) bool {
	for i := range in.Messages {
		m := &in.Messages[i]
		switch m.Kind {
		case jsonrpc.KindResponse:
			continue
		case jsonrpc.KindNotification:
			if slices.Contains(notificationsForAnyone, m.Method) && st.anyOnServer(c, server.Name) {
				continue
			}
		}
		if ok, _ := c.grant.Allow(server.Name, m.Method, m.Name); ok {
			continue
		}
		what := "method " + quote(m.Method)
		switch m.Method {
		case "tools/call":
			what = "tool " + quote(m.Name)
		case "prompts/get":
			what = "prompt " + quote(m.Name)
		case "resources/read":
			what = "resource " + quote(m.Name)
		}
		id := m.ID
		if in.Batch {
			id = ""
		}
		st.deny(w, r, server, mcpPath, st.scopesAllowing(server.Name, m.Method, m.Name), id, what+" on MCP server "+quote(server.Name)+" is not allowed for this caller")
		return false
	}
	return true
}

// allowStream decides a GET or DELETE: allowed if the caller may use the server at all.
func (st *authState) allowStream(w http.ResponseWriter, r *http.Request, c *who, server *mcpregistry.Server, mcpPath string) bool {
	if st.anyOnServer(c, server.Name) {
		return true
	}
	st.deny(w, r, server, mcpPath, st.scopesFor(server.Name), "", "MCP server "+quote(server.Name)+" is not allowed for this caller")
	return false
}

func (st *authState) deny(w http.ResponseWriter, r *http.Request, server *mcpregistry.Server, mcpPath string, scopes []string, id, msg string) {
	w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope", scope="`+headerValue(strings.Join(scopes, " "))+`", resource_metadata="`+headerValue(st.prmURL(r, mcpPath))+`"`)
	writeRPCError(w, http.StatusForbidden, id, codeInsufficientScope, msg)
}
