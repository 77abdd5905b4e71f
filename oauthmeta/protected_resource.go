// Package oauthmeta serves the OAuth discovery documents MCP clients read before they log
// in: the protected-resource metadata of RFC 9728, which names the authorization servers
// whose tokens the gateway accepts.
package oauthmeta

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymcp/caddymcp/internal/origin"
)

func init() {
	caddy.RegisterModule(new(ProtectedResourceMetadata))
}

// WellKnownPRM is the RFC 9728 well-known path. Clients ask for it with the MCP endpoint's
// path appended (/.well-known/oauth-protected-resource/servers/github/mcp) and then at the
// root.
const WellKnownPRM = "/.well-known/oauth-protected-resource"

// maxResourcePath bounds the path suffix a client may ask metadata for.
const maxResourcePath = 1024

// ProtectedResourceMetadata is the mcp_oauth_metadata handler: it answers
// GET /.well-known/oauth-protected-resource[/<mcp path>] with the resource's metadata
// (RFC 9728) and passes every other request on. The document's "resource" is the MCP
// URL the client asked about, exactly (go-sdk clients refuse anything else); at the root
// it is the bare origin.
type ProtectedResourceMetadata struct {
	// Resource is the public origin of the gateway, e.g. https://mcp.example.com. Default:
	// the request's scheme and Host.
	Resource string `json:"resource,omitempty"`
	// AuthorizationServers are the issuers whose tokens the gateway accepts.
	AuthorizationServers []string `json:"authorization_servers,omitempty"`
	// ScopesSupported are the scope names clients may request.
	ScopesSupported []string `json:"scopes_supported,omitempty"`
	// ResourceName is a human-readable name of the gateway.
	ResourceName string `json:"resource_name,omitempty"`
	// ResourceDocumentation is a URL of documentation for people.
	ResourceDocumentation string `json:"resource_documentation,omitempty"`
}

// CaddyModule returns the Caddy module information.
func (*ProtectedResourceMetadata) CaddyModule() caddy.ModuleInfo {
	return caddy.ModuleInfo{
		ID:  "http.handlers.mcp_oauth_metadata",
		New: func() caddy.Module { return new(ProtectedResourceMetadata) },
	}
}

// Provision resolves placeholders in the configured URLs.
func (p *ProtectedResourceMetadata) Provision(caddy.Context) error {
	repl := caddy.NewReplacer()
	p.Resource = strings.TrimRight(repl.ReplaceKnown(p.Resource, ""), "/")
	for i, s := range p.AuthorizationServers {
		p.AuthorizationServers[i] = repl.ReplaceKnown(s, "")
	}
	return nil
}

// Validate checks that the URLs are absolute.
func (p *ProtectedResourceMetadata) Validate() error {
	if p.Resource != "" {
		if err := checkOrigin(p.Resource); err != nil {
			return fmt.Errorf("resource: %v", err)
		}
	}
	if len(p.AuthorizationServers) == 0 {
		return fmt.Errorf("authorization_servers: at least one issuer is required")
	}
	for _, s := range p.AuthorizationServers {
		u, err := url.Parse(s)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.RawQuery != "" || u.Fragment != "" {
			return fmt.Errorf("authorization_servers: %q is not an issuer URL (http(s)://host[/path], no query or fragment)", s)
		}
	}
	return nil
}

func checkOrigin(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" || u.User != nil {
		return fmt.Errorf("%q must be an origin such as https://mcp.example.com", s)
	}
	return nil
}

// ServeHTTP implements caddyhttp.MiddlewareHandler.
func (p *ProtectedResourceMetadata) ServeHTTP(w http.ResponseWriter, r *http.Request, next caddyhttp.Handler) error {
	suffix, ok := strings.CutPrefix(r.URL.Path, WellKnownPRM)
	if !ok || (suffix != "" && suffix[0] != '/') {
		return next.ServeHTTP(w, r)
	}
	h := w.Header()
	h.Set("Access-Control-Allow-Origin", "*")
	switch r.Method {
	case http.MethodGet, http.MethodHead:
	case http.MethodOptions:
		h.Set("Access-Control-Allow-Methods", "GET, OPTIONS")
		h.Set("Access-Control-Allow-Headers", "Authorization, Content-Type, MCP-Protocol-Version")
		h.Set("Access-Control-Max-Age", "86400")
		w.WriteHeader(http.StatusNoContent)
		return nil
	default:
		h.Set("Allow", "GET, HEAD, OPTIONS")
		return writeJSONError(w, http.StatusMethodNotAllowed, "method_not_allowed", "protected-resource metadata is read with GET")
	}
	if len(suffix) > maxResourcePath || strings.ContainsAny(suffix, "\\\x00") || strings.Contains(suffix, "//") {
		return writeJSONError(w, http.StatusNotFound, "not_found", "no protected resource at this path")
	}
	doc := p.document(origin.Resolve(p.Resource, r) + strings.TrimSuffix(suffix, "/"))
	body, err := json.Marshal(doc)
	if err != nil {
		return caddyhttp.Error(http.StatusInternalServerError, err)
	}
	h.Set("Content-Type", "application/json")
	h.Set("Content-Length", strconv.Itoa(len(body)))
	h.Set("Cache-Control", "public, max-age=300")
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
	return nil
}

// Document is the RFC 9728 protected-resource metadata.
type Document struct {
	Resource               string   `json:"resource"`
	AuthorizationServers   []string `json:"authorization_servers"`
	ScopesSupported        []string `json:"scopes_supported,omitempty"`
	BearerMethodsSupported []string `json:"bearer_methods_supported"`
	ResourceName           string   `json:"resource_name,omitempty"`
	ResourceDocumentation  string   `json:"resource_documentation,omitempty"`
}

func (p *ProtectedResourceMetadata) document(resource string) Document {
	return Document{
		Resource:               resource,
		AuthorizationServers:   p.AuthorizationServers,
		ScopesSupported:        p.ScopesSupported,
		BearerMethodsSupported: []string{"header"},
		ResourceName:           p.ResourceName,
		ResourceDocumentation:  p.ResourceDocumentation,
	}
}

func writeJSONError(w http.ResponseWriter, status int, code, description string) error {
	body, _ := json.Marshal(map[string]string{"error": code, "error_description": description})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(status)
	_, _ = w.Write(body)
	return nil
}

// Interface guards
var (
	_ caddy.Provisioner           = (*ProtectedResourceMetadata)(nil)
	_ caddy.Validator             = (*ProtectedResourceMetadata)(nil)
	_ caddyhttp.MiddlewareHandler = (*ProtectedResourceMetadata)(nil)
)
