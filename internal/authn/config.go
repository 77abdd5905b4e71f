package authn

import (
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"
)

// Defaults used when the corresponding Config field is zero.
const (
	DefaultSkew               = 60 * time.Second
	DefaultCacheSize          = 10000
	DefaultMaxTokenBytes      = 16 << 10
	DefaultMaxResponseBytes   = 1 << 20
	DefaultFetchTimeout       = 10 * time.Second
	DefaultRefreshInterval    = 15 * time.Minute
	DefaultMinRefetchInterval = 10 * time.Second
	DefaultGroupsClaim        = "groups"
)

// DefaultAlgorithms is the allow-list used for an issuer that configures none.
var DefaultAlgorithms = []string{"RS256", "PS256", "ES256", "EdDSA"}

// supportedAlgs are the only algorithms a configuration may name. HMAC (HS*) and "none"
// are deliberately absent: a resource server verifying third-party tokens never shares a
// secret with the issuer, and accepting HS* opens the "HS256 keyed with the RSA public
// key" confusion attack.
var supportedAlgs = map[string]algKind{
	"RS256": kindRSA, "RS384": kindRSA, "RS512": kindRSA,
	"PS256": kindRSA, "PS384": kindRSA, "PS512": kindRSA,
	"ES256": kindP256, "ES384": kindP384, "ES512": kindP521,
	"EdDSA": kindEd25519,
}

// IssuerConfig describes one trusted token issuer.
type IssuerConfig struct {
	// Issuer is compared byte for byte with the token's iss claim (a trailing slash
	// matters: Auth0 issuers end in "/"). Required; an absolute http(s) URL.
	Issuer string
	// JWKSURL, when set, is used instead of discovery.
	JWKSURL string
	// Audiences: the token's aud must contain one of them (RFC 8707: the gateway's
	// resource URL). Empty: Config.Audiences is used; one of the two must be non-empty.
	Audiences []string
	// GroupsClaim is the claim path holding the caller's groups: "groups" (default),
	// "cognito:groups", "roles", "realm_access.roles". A key that exists verbatim wins
	// (so "cognito:groups" and URL-named claims such as "https://x.example/roles" work);
	// otherwise dots descend into nested objects.
	GroupsClaim string
	// Algorithms is the allow-list for this issuer, a subset of RS256 RS384 RS512 PS256
	// PS384 PS512 ES256 ES384 ES512 EdDSA. Empty: DefaultAlgorithms.
	Algorithms []string
}

// Config configures a Validator. Zero values select the defaults above.
type Config struct {
	Issuers []IssuerConfig
	// Audiences applies to every issuer that lists none of its own.
	Audiences []string
	// AudienceFunc, for issuers that list no audiences of their own, accepts further
	// audiences: those it returns true for (the MCP URL of a server registered after
	// the config loaded). It must be cheap and safe for concurrent use.
	AudienceFunc func(aud string) bool
	// Skew is the leeway for exp, nbf and iat. 0 means DefaultSkew; negative means none.
	Skew time.Duration
	// HTTPClient fetches discovery documents and JWKS. nil: a client on
	// http.DefaultTransport. Each fetch is additionally bounded by FetchTimeout and
	// MaxResponseBytes whatever the client's own settings.
	HTTPClient *http.Client
	// FetchTimeout bounds one discovery or JWKS fetch. 0: DefaultFetchTimeout.
	FetchTimeout time.Duration
	// MaxResponseBytes caps discovery/JWKS response bodies. 0: DefaultMaxResponseBytes.
	MaxResponseBytes int64
	// RefreshInterval is the period of the background JWKS refresh. 0:
	// DefaultRefreshInterval. Minimum 1s.
	RefreshInterval time.Duration
	// MinRefetchInterval rate-limits on-demand fetches (unknown kid, cold start retry,
	// discovery retry) per issuer and per JWKS URL. 0: DefaultMinRefetchInterval.
	MinRefetchInterval time.Duration
	// CacheSize bounds the validated-token cache. 0: DefaultCacheSize; negative: no cache.
	CacheSize int
	// MaxTokenBytes: longer tokens are rejected before any parsing. 0: DefaultMaxTokenBytes.
	MaxTokenBytes int
	// Now is the clock (tests). nil: time.Now.
	Now func() time.Time
	// KeyMemory, if set, seeds this Validator with the keys and discovered JWKS URLs of
	// earlier Validators that used the same KeyMemory, and records its own (see KeyMemory).
	KeyMemory *KeyMemory
	// Local are issuers of the same Caddy config (the built-in authorization server),
	// trusted with no configuration; see LocalIssuers. nil: none.
	Local *LocalIssuers
	// OnFetchError, if set, is called (from any goroutine, must not block) for every
	// failed discovery or JWKS fetch, including background refreshes.
	OnFetchError func(url string, err error)
}

type issuerSettings struct {
	issuer      string
	jwksURL     string
	audiences   []string
	audFunc     func(string) bool
	groupsClaim string
	algs        algSet
}

// algSet is a bit set over the index of the algorithm in algOrder.
type algSet uint16

var algOrder = []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA"}

func algBit(alg string) (algSet, bool) {
	for i, a := range algOrder {
		if a == alg {
			return 1 << i, true
		}
	}
	return 0, false
}

func (s algSet) has(alg string) bool {
	b, ok := algBit(alg)
	return ok && s&b != 0
}

func (c *Config) withDefaults() Config {
	n := *c
	switch {
	case n.Skew == 0:
		n.Skew = DefaultSkew
	case n.Skew < 0:
		n.Skew = 0
	}
	if n.HTTPClient == nil {
		n.HTTPClient = &http.Client{Transport: http.DefaultTransport}
	}
	if n.FetchTimeout <= 0 {
		n.FetchTimeout = DefaultFetchTimeout
	}
	if n.MaxResponseBytes <= 0 {
		n.MaxResponseBytes = DefaultMaxResponseBytes
	}
	if n.RefreshInterval <= 0 {
		n.RefreshInterval = DefaultRefreshInterval
	}
	if n.RefreshInterval < time.Second {
		n.RefreshInterval = time.Second
	}
	if n.MinRefetchInterval <= 0 {
		n.MinRefetchInterval = DefaultMinRefetchInterval
	}
	if n.CacheSize == 0 {
		n.CacheSize = DefaultCacheSize
	}
	if n.MaxTokenBytes <= 0 {
		n.MaxTokenBytes = DefaultMaxTokenBytes
	}
	if n.Now == nil {
		n.Now = time.Now
	}
	return n
}

func checkURL(what, s string) error {
	u, err := url.Parse(s)
	if err != nil {
		return fmt.Errorf("%s %q: %v", what, s, err)
	}
	if (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return fmt.Errorf("%s %q: must be an absolute http(s) URL", what, s)
	}
	if u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%s %q: must not have a query, fragment or user info", what, s)
	}
	return nil
}

func (c *Config) issuerSettings() ([]issuerSettings, error) {
	if len(c.Issuers) == 0 && c.Local == nil {
		return nil, fmt.Errorf("authn: no trusted issuers configured")
	}
	seen := make(map[string]bool, len(c.Issuers))
	out := make([]issuerSettings, 0, len(c.Issuers))
	for _, ic := range c.Issuers {
		if ic.Issuer == "" {
			return nil, fmt.Errorf("authn: issuer must not be empty")
		}
		if err := checkURL("authn: issuer", ic.Issuer); err != nil {
			return nil, err
		}
		if seen[ic.Issuer] {
			return nil, fmt.Errorf("authn: issuer %q configured twice", ic.Issuer)
		}
		seen[ic.Issuer] = true
		if ic.JWKSURL != "" {
			if err := checkURL("authn: jwks_url", ic.JWKSURL); err != nil {
				return nil, err
			}
		}
		s := issuerSettings{issuer: ic.Issuer, jwksURL: ic.JWKSURL, groupsClaim: ic.GroupsClaim}
		s.audiences = slices.Clone(ic.Audiences)
		if len(s.audiences) == 0 {
			s.audiences = slices.Clone(c.Audiences)
			s.audFunc = c.AudienceFunc
		}
		s.audiences = slices.DeleteFunc(s.audiences, func(a string) bool { return a == "" })
		if len(s.audiences) == 0 {
			return nil, fmt.Errorf("authn: issuer %q: no audiences configured (set the gateway's resource URL)", ic.Issuer)
		}
		if s.groupsClaim == "" {
			s.groupsClaim = DefaultGroupsClaim
		}
		algs := ic.Algorithms
		if len(algs) == 0 {
			algs = DefaultAlgorithms
		}
		for _, a := range algs {
			if strings.HasPrefix(strings.ToUpper(a), "HS") || strings.EqualFold(a, "none") {
				return nil, fmt.Errorf("authn: issuer %q: algorithm %q is never accepted", ic.Issuer, a)
			}
			b, ok := algBit(a)
			if !ok {
				return nil, fmt.Errorf("authn: issuer %q: unsupported algorithm %q (supported: %s)", ic.Issuer, a, strings.Join(algOrder, " "))
			}
			s.algs |= b
		}
		out = append(out, s)
	}
	return out, nil
}
