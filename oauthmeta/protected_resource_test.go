package oauthmeta

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/modelcontextprotocol/go-sdk/oauthex"
)

var nextHandler = caddyhttp.HandlerFunc(func(w http.ResponseWriter, r *http.Request) error {
	w.WriteHeader(http.StatusTeapot)
	return nil
})

func serve(p *ProtectedResourceMetadata) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if err := p.ServeHTTP(w, r, nextHandler); err != nil {
			http.Error(w, err.Error(), 500)
		}
	}))
}

// TestGoSDKClientAcceptsMetadata reads the metadata with go-sdk's own client code, which
// insists that "resource" equals the MCP URL exactly.
func TestGoSDKClientAcceptsMetadata(t *testing.T) {
	p := &ProtectedResourceMetadata{AuthorizationServers: []string{"http://127.0.0.1:9/realms/corp"}, ScopesSupported: []string{"servers/all"}}
	if err := p.Validate(); err != nil {
		t.Fatal(err)
	}
	srv := serve(p)
	defer srv.Close()
	for _, mcpPath := range []string{"/github/mcp", "/servers/github/mcp", ""} {
		resource := srv.URL + mcpPath
		prm, err := oauthex.GetProtectedResourceMetadata(context.Background(), srv.URL+WellKnownPRM+mcpPath, resource, srv.Client())
		if err != nil {
			t.Fatalf("%s: %v", mcpPath, err)
		}
		if len(prm.AuthorizationServers) != 1 || prm.AuthorizationServers[0] != "http://127.0.0.1:9/realms/corp" || prm.ScopesSupported[0] != "servers/all" {
			t.Fatalf("%s: %+v", mcpPath, prm)
		}
	}
}

func TestConfiguredResourceAndCORS(t *testing.T) {
	p := &ProtectedResourceMetadata{Resource: "https://mcp.example.com/", AuthorizationServers: []string{"https://idp.example.com"}}
	p.Provision(nilContext())
	srv := serve(p)
	defer srv.Close()
	resp, err := http.Get(srv.URL + WellKnownPRM + "/everything/mcp")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc Document
	json.NewDecoder(resp.Body).Decode(&doc)
	if doc.Resource != "https://mcp.example.com/everything/mcp" || doc.BearerMethodsSupported[0] != "header" {
		t.Fatalf("document: %+v", doc)
	}
	if resp.Header.Get("Access-Control-Allow-Origin") != "*" || resp.Header.Get("Content-Type") != "application/json" {
		t.Fatalf("headers: %v", resp.Header)
	}

	req, _ := http.NewRequest(http.MethodOptions, srv.URL+WellKnownPRM, nil)
	resp, _ = http.DefaultClient.Do(req)
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent || !strings.Contains(resp.Header.Get("Access-Control-Allow-Methods"), "GET") {
		t.Fatalf("preflight: %d %v", resp.StatusCode, resp.Header)
	}
	resp, _ = http.Post(srv.URL+WellKnownPRM, "application/json", strings.NewReader("{}"))
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %d", resp.StatusCode)
	}
	for _, path := range []string{WellKnownPRM + "/" + strings.Repeat("a", 2000), WellKnownPRM + "//x"} {
		resp, _ = http.Get(srv.URL + path)
		resp.Body.Close()
		if resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %d", path[:40], resp.StatusCode)
		}
	}
	for _, path := range []string{"/.well-known/oauth-protected-resourcex", "/github/mcp", "/.well-known/oauth-authorization-server"} {
		resp, _ = http.Get(srv.URL + path)
		resp.Body.Close()
		if resp.StatusCode != http.StatusTeapot {
			t.Errorf("%s went to the metadata handler: %d", path, resp.StatusCode)
		}
	}
}

func TestValidateAndCaddyfile(t *testing.T) {
	for _, bad := range []*ProtectedResourceMetadata{
		{},
		{AuthorizationServers: []string{"javascript:alert(1)"}},
		{AuthorizationServers: []string{"https://idp?x=1"}},
		{Resource: "https://mcp.example.com/path", AuthorizationServers: []string{"https://idp"}},
		{Resource: "mcp.example.com", AuthorizationServers: []string{"https://idp"}},
	} {
		if bad.Validate() == nil {
			t.Errorf("%+v: want a validation error", bad)
		}
	}
	p := new(ProtectedResourceMetadata)
	err := p.UnmarshalCaddyfile(caddyfile.NewTestDispenser(`mcp_oauth_metadata {
		resource https://mcp.example.com
		authorization_servers https://idp.example.com/realms/a https://gw.example.com
		scopes_supported servers/all
		resource_name "Example MCP gateway"
		resource_documentation https://wiki.example.com/mcp
	}`))
	if err != nil || p.Resource != "https://mcp.example.com" || len(p.AuthorizationServers) != 2 || p.ResourceName != "Example MCP gateway" {
		t.Fatalf("%v %+v", err, p)
	}
	if err := new(ProtectedResourceMetadata).UnmarshalCaddyfile(caddyfile.NewTestDispenser("mcp_oauth_metadata {\n bogus\n}")); err == nil {
		t.Error("an unknown option must fail")
	}
}

func nilContext() caddy.Context { return caddy.Context{} }
