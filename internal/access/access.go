package access

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/caddyserver/caddy/v2"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/origin"
	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/internal/principal"
)

// keyMemory carries the last good JWKS from one Validator to the next across config
// reloads (and between the handlers of one config), so an IdP outage during a reload
// keeps authentication working.
var keyMemory = authn.NewKeyMemory()

// maxGrantCache bounds the cache of resolved grants (keyed by the group set).
const maxGrantCache = 4096

// Authenticator is the provisioned form of a Config.
type Authenticator struct {
	validator *authn.Validator // nil when only API keys are configured
	policy    *policy.Policy
	// single grants exactly one scope per pseudo-group named after the scope, to find
	// which scopes would allow a call (for the scope="…" of a 403).
	single       *policy.Policy
	scopeNames   []string                   // sorted
	scopeServers map[string]map[string]bool // scope → servers it has rules for ("" = all)
	resource     string
	apiKeys      map[[32]byte]*principal.Caller
	grantsMu     sync.RWMutex
	grants       map[string]*resolvedGrant // appendGrantKey of the group set → resolved grant
	strict       bool
	// perServerAudience: a token whose only accepted audience is one server's MCP URL
	// is accepted on that server only (Config.AudienceScope).
	perServerAudience bool
	// globalAudiences are the issuers' own audience lists: accepted on every server.
	globalAudiences map[string][]string // issuer → audiences
}

// resolvedGrant is what the policy grants one set of groups.
type resolvedGrant struct {
	grant  policy.Grant
	scopes []string // the policy scopes that make grant
}

// New provisions cfg. Issuers that list no audiences of their own accept the
// resource, and whatever audienceFunc (may be nil) accepts at validation time: the
// handler's public MCP URLs, which change as servers are registered. local (may be
// nil) are the issuers of the same Caddy config — the built-in authorization server —
// trusted with no line of cfg, with the same audiences. logger gets warnings.
func New(ctx context.Context, logger *zap.Logger, cfg *Config, audienceFunc func(string) bool, local *authn.LocalIssuers) (*Authenticator, error) {
	st := &Authenticator{
		resource: strings.TrimRight(cfg.Resource, "/"),
		apiKeys:  map[[32]byte]*principal.Caller{},
		strict:   cfg.Strict,
	}
	switch cfg.AudienceScope {
	case "", AudiencePerServer:
		st.perServerAudience = true
	case AudienceAny:
	default:
		return nil, fmt.Errorf("auth: audience_scope %q: want per_server or any", cfg.AudienceScope)
	}
	if cfg.Resource != "" && !strings.HasPrefix(cfg.Resource, "https://") && !strings.HasPrefix(cfg.Resource, "http://") {
		return nil, fmt.Errorf("auth: resource %q must be an absolute http(s) URL", cfg.Resource)
	}

	var pc *policy.Config
	switch {
	case cfg.PolicyFile != "" && cfg.Policy != nil:
		return nil, fmt.Errorf("auth: set policy_file or an inline policy, not both")
	case cfg.PolicyFile != "":
		path := caddy.NewReplacer().ReplaceKnown(cfg.PolicyFile, "")
		data, err := os.ReadFile(path)
		if err != nil {
			return nil, fmt.Errorf("auth: reading policy_file: %v", err)
		}
		if pc, err = policy.ParseYAML(data); err != nil {
			return nil, fmt.Errorf("auth: policy_file %s: %v", path, err)
		}
	case cfg.Policy != nil:
		pc = cfg.Policy
	default:
		pc = &policy.Config{} // deny everything
		logger.Warn("auth has no policy: every request will be denied")
	}
	p, warnings, err := policy.Compile(pc)
	if err != nil {
		return nil, fmt.Errorf("auth: policy: %v", err)
	}
	for _, w := range warnings {
		logger.Warn("policy", zap.String("warning", w))
	}
	st.policy = p
	singleCfg := &policy.Config{Scopes: pc.Scopes, GroupMappings: map[string][]string{}}
	st.scopeServers = map[string]map[string]bool{}
	for name, rules := range pc.Scopes {
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

	for i, k := range cfg.APIKeys {
		raw, err := hex.DecodeString(k.SHA256)
		if err != nil || len(raw) != sha256.Size {
			return nil, fmt.Errorf("auth: api key %d: want the key's SHA-256 as 64 hex digits", i+1)
		}
		var h [32]byte
		copy(h[:], raw)
		if _, dup := st.apiKeys[h]; dup {
			return nil, fmt.Errorf("auth: api key %d is listed twice", i+1)
		}
		st.apiKeys[h] = &principal.Caller{Subject: "api-key:" + strings.ToLower(k.SHA256[:12]), Groups: slices.Clone(k.Groups)}
	}

	var defaultAudiences []string
	if st.resource != "" {
		defaultAudiences = []string{st.resource}
	}
	if len(cfg.Issuers) > 0 || (local != nil && len(defaultAudiences) > 0) {
		ac := authn.Config{
			Audiences:    defaultAudiences,
			AudienceFunc: audienceFunc,
			Local:        local,
			KeyMemory:    keyMemory,
			OnFetchError: func(url string, err error) {
				logger.Warn("fetching token signing keys failed", zap.String("url", url), zap.Error(err))
			},
		}
		st.globalAudiences = map[string][]string{}
		for _, is := range cfg.Issuers {
			if len(is.Audiences) > 0 {
				st.globalAudiences[is.Issuer] = is.Audiences
			}
			if len(is.Audiences) == 0 && len(defaultAudiences) == 0 {
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
		return nil, fmt.Errorf("auth: configure at least one issuer or api_key, or set resource to accept the built-in authorization server's tokens (mcp_oauth_server)")
	}
	return st, nil
}

// Resource is the configured public base URL without a trailing slash ("" if unset).
func (st *Authenticator) Resource() string { return st.resource }

// Resolve returns a copy of p with the policy's grant for its groups (Grant,
// PolicyScopes), cached per group set; p itself may be shared and is not modified.
func (st *Authenticator) Resolve(p *principal.Caller) *principal.Caller {
	var arr [256]byte
	key := appendGrantKey(arr[:0], p.Groups)
	st.grantsMu.RLock()
	rg := st.grants[string(key)] // no allocation: the compiler converts in place for a lookup
	st.grantsMu.RUnlock()
	if rg == nil {
		g := st.policy.Resolve(p.Groups)
		rg = &resolvedGrant{grant: g, scopes: g.ScopeNames()}
		st.grantsMu.Lock()
		if st.grants == nil {
			st.grants = make(map[string]*resolvedGrant)
		}
		if len(st.grants) < maxGrantCache {
			st.grants[string(key)] = rg
		}
		st.grantsMu.Unlock()
	}
	c := *p
	c.Grant, c.PolicyScopes = rg.grant, rg.scopes
	return &c
}

// appendGrantKey appends the cache key of a group set: every name prefixed with its
// length, so no name (whatever bytes it holds) can imitate a boundary between two
// names, and [] , [""] , ["",""] stay distinct.
func appendGrantKey(b []byte, groups []string) []byte {
	for _, g := range groups {
		b = binary.AppendUvarint(b, uint64(len(g)))
		b = append(b, g...)
	}
	return b
}

// AnyOnServer reports whether one of the caller's scopes has a rule for server.
func (st *Authenticator) AnyOnServer(c *principal.Caller, server string) bool {
	server = strings.Trim(server, "/")
	for _, sc := range c.PolicyScopes {
		if set := st.scopeServers[sc]; set[""] || set[server] {
			return true
		}
	}
	return false
}

// ScopesFor lists the scopes with a rule for server (the scope="…" of a 401).
func (st *Authenticator) ScopesFor(server string) []string {
	server = strings.Trim(server, "/")
	var out []string
	for _, sc := range st.scopeNames {
		if set := st.scopeServers[sc]; set[""] || set[server] {
			out = append(out, sc)
		}
	}
	return out
}

// ScopesAllowing lists the scopes that would allow the call (the scope="…" of a 403).
func (st *Authenticator) ScopesAllowing(server, method, name string) []string {
	var out []string
	for _, sc := range st.scopeNames {
		if ok, _ := st.single.Resolve([]string{sc}).Allow(server, method, name); ok {
			out = append(out, sc)
		}
	}
	return out
}

// PRMURL is the protected resource metadata URL of path (RFC 9728 §3.1), on the
// configured resource's origin or else the request's.
func (st *Authenticator) PRMURL(r *http.Request, path string) string {
	return origin.Resolve(st.resource, r) + "/.well-known/oauth-protected-resource" + path
}

// HeaderValue makes s safe inside a quoted-string of WWW-Authenticate.
func HeaderValue(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '"' || r == '\\' || r < 0x20 || r == 0x7f {
			return -1
		}
		return r
	}, s)
}

var errUnknownAPIKey = &authn.InvalidTokenError{Reason: authn.ReasonMalformed}

// Identify finds the caller: an X-API-Key, else the Authorization bearer token (with
// composite, the X-Authorization one) as an API key or a JWT. Tokens in the query string
// are never looked at. Errors match authn.ErrNoToken, authn.ErrKeysUnavailable or are
// *authn.InvalidTokenError.
func (st *Authenticator) Identify(r *http.Request, composite bool) (*principal.Caller, error) {
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
