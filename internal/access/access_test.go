package access

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"github.com/caddymcp/caddymcp/internal/principal"
	"net/http"
	"slices"
	"testing"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/authn"
	"github.com/caddymcp/caddymcp/internal/policy"
)

func keyHash(k string) string {
	sum := sha256.Sum256([]byte(k))
	return hex.EncodeToString(sum[:])
}

func TestAPIKeysAndGrants(t *testing.T) {
	cfg := &Config{
		APIKeys: []APIKey{{SHA256: keyHash("ci-key"), Groups: []string{"ci"}}, {SHA256: keyHash("ops-key"), Groups: []string{"ops"}}},
		Policy: &policy.Config{
			GroupMappings: map[string][]string{"ci": {"read"}, "ops": {"admin"}},
			Scopes: map[string][]policy.RuleConfig{
				"read":  {{Server: "github", Methods: []string{"tools/list", "tools/call"}, Tools: []string{"search"}}},
				"admin": {{Server: "*", Methods: []string{"*"}, Tools: []string{"*"}}},
			},
			UIScopes: map[string]map[string][]string{"admin": {"list_service": {"all"}}},
		},
	}
	au, err := New(context.Background(), zap.NewNop(), cfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	req := func(h ...string) *http.Request {
		r, _ := http.NewRequest("GET", "http://gw/x", nil)
		for i := 0; i+1 < len(h); i += 2 {
			r.Header.Add(h[i], h[i+1])
		}
		return r
	}
	for _, r := range []*http.Request{req("Authorization", "Bearer ci-key"), req("X-Api-Key", "ci-key")} {
		p, err := au.Identify(r, false)
		if err != nil || !slices.Equal(p.Groups, []string{"ci"}) {
			t.Fatalf("ci key: %v %v", p, err)
		}
		c := au.Resolve(p)
		if ok, _ := c.Grant.Allow("github", "tools/call", "search"); !ok {
			t.Error("ci may not call github/search")
		}
		if ok, _ := c.Grant.Allow("github", "tools/call", "delete_repo"); ok {
			t.Error("ci may call github/delete_repo")
		}
		if !au.AnyOnServer(c, "github") || au.AnyOnServer(c, "slack") {
			t.Error("AnyOnServer")
		}
		if c.Grant.AllowUI(policy.ListService, "github") {
			t.Error("ci has list_service")
		}
	}
	// The grant cache gives the same answer for the same group set.
	p, _ := au.Identify(req("X-Api-Key", "ops-key"), false)
	if a, b := au.Resolve(p), au.Resolve(p); !slices.Equal(a.PolicyScopes, b.PolicyScopes) || !b.Grant.AllowUI(policy.ListService, "x") {
		t.Errorf("ops grants %v %v", a.PolicyScopes, b.PolicyScopes)
	}
	// Composite mode reads X-Authorization only.
	if _, err := au.Identify(req("Authorization", "Bearer ci-key"), true); !errors.Is(err, authn.ErrNoToken) {
		t.Errorf("composite with only Authorization: %v", err)
	}
	if p, err := au.Identify(req("X-Authorization", "Bearer ci-key"), true); err != nil || p.Groups[0] != "ci" {
		t.Errorf("composite: %v %v", p, err)
	}
	for _, r := range []*http.Request{req("X-Api-Key", "nope"), req("X-Api-Key", "ci-key", "X-Api-Key", "ci-key"), req("Authorization", "Bearer nope")} {
		if _, err := au.Identify(r, false); err == nil || authn.Reason(err) == "" {
			t.Errorf("%v: accepted or no reason: %v", r.Header, err)
		}
	}
	if _, err := au.Identify(req(), false); !errors.Is(err, authn.ErrNoToken) {
		t.Errorf("no credentials: %v", err)
	}
	if got := au.ScopesFor("github"); !slices.Equal(got, []string{"admin", "read"}) {
		t.Errorf("ScopesFor(github) = %v", got)
	}
	if got := au.ScopesAllowing("github", "tools/call", "delete_repo"); !slices.Equal(got, []string{"admin"}) {
		t.Errorf("ScopesAllowing = %v", got)
	}
	r := req()
	r.Host = "gw.example:8443"
	if got := au.PRMURL(r, "/github/mcp"); got != "http://gw.example:8443/.well-known/oauth-protected-resource/github/mcp" {
		t.Errorf("PRMURL = %s", got)
	}
	if got := HeaderValue("a\"b\\c\nd"); got != "abcd" {
		t.Errorf("HeaderValue = %q", got)
	}
}

func TestConfigErrors(t *testing.T) {
	key := []APIKey{{SHA256: keyHash("k")}}
	for name, cfg := range map[string]*Config{
		"nothing":           {},
		"short key hash":    {APIKeys: []APIKey{{SHA256: "abc"}}},
		"duplicate key":     {APIKeys: append(key, key...)},
		"relative resource": {Resource: "mcp.example.com", APIKeys: key},
		"both policies":     {PolicyFile: "x.yml", Policy: &policy.Config{}, APIKeys: key},
		"issuer, no aud":    {Issuers: []Issuer{{Issuer: "https://idp.example.com", JWKSURL: "https://idp.example.com/jwks"}}},
	} {
		if _, err := New(context.Background(), zap.NewNop(), cfg, nil, nil); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}

// A group whose name embeds the separator of another group set must not share that
// set's cache entry, in either order of arrival.
func TestGrantCacheKeysDoNotCollide(t *testing.T) {
	cfg := &Config{
		APIKeys: []APIKey{{SHA256: keyHash("k"), Groups: []string{"x"}}},
		Policy: &policy.Config{
			GroupMappings: map[string][]string{"admins": {"admin"}, "yy": {"read"}, "admins\nyy": {"read"}},
			Scopes: map[string][]policy.RuleConfig{
				"read":  {{Server: "github", Methods: []string{"tools/list"}}},
				"admin": {{Server: "*", Methods: []string{"*"}, Tools: []string{"*"}}},
			},
		},
	}
	joined := []string{"admins\nyy"}
	split := []string{"admins", "yy"}
	for _, order := range [][][]string{{split, joined}, {joined, split}} {
		au, err := New(context.Background(), zap.NewNop(), cfg, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, groups := range order {
			c := au.Resolve(&principal.Caller{Subject: "u", Groups: groups})
			ok, _ := c.Grant.Allow("slack", "tools/call", "post")
			if want := len(groups) == 2; ok != want {
				t.Errorf("groups %q: admin grant %v, want %v", groups, ok, want)
			}
		}
	}
	// Empty names and empty sets stay distinct too.
	if string(appendGrantKey(nil, nil)) == string(appendGrantKey(nil, []string{""})) || string(appendGrantKey(nil, []string{"", ""})) == string(appendGrantKey(nil, []string{""})) {
		t.Error("empty group names collide")
	}
}

func BenchmarkResolveCached(b *testing.B) {
	au, err := New(context.Background(), zap.NewNop(), &Config{
		APIKeys: []APIKey{{SHA256: keyHash("k")}},
		Policy:  &policy.Config{GroupMappings: map[string][]string{"a": {"s"}}, Scopes: map[string][]policy.RuleConfig{"s": {{Server: "*", Methods: []string{"*"}}}}},
	}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	p := &principal.Caller{Subject: "u", Groups: []string{"engineering", "platform-admins", "a"}}
	b.ReportAllocs()
	for b.Loop() {
		au.Resolve(p)
	}
}
