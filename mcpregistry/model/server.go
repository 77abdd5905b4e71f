package model

import (
	"fmt"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"time"
)

// Transport is how the gateway speaks to an upstream MCP server.
type Transport string

const (
	// TransportStreamableHTTP is the streamable HTTP transport (MCP 2025-03-26 and later).
	TransportStreamableHTTP Transport = "streamable-http"
	// TransportSSE is the legacy HTTP+SSE transport (MCP 2024-11-05): a GET stream whose
	// first event names the endpoint that takes the client's POSTs.
	TransportSSE Transport = "sse"
)

// BuiltinScheme marks an upstream served in-process by the plugin (for example
// "builtin:registry", the registry's own MCP server) rather than over the network.
const BuiltinScheme = "builtin"

// BackendAuthScheme says how the gateway authenticates to an upstream.
type BackendAuthScheme string

const (
	BackendAuthNone   BackendAuthScheme = "none"
	BackendAuthBearer BackendAuthScheme = "bearer"
	BackendAuthAPIKey BackendAuthScheme = "api_key"
	// BackendAuthOAuth: the gateway is an OAuth client of the upstream's authorization
	// server and sends each caller's own access token (per-user authorization code,
	// token exchange) or the gateway's own (client credentials). Declared in the Caddy
	// config only: it needs the client registration that comes with it.
	BackendAuthOAuth BackendAuthScheme = "oauth"
)

// BackendAuth describes the credential the gateway presents to an upstream. The secret
// itself is stored encrypted, separately from the record, and never returned by an API.
type BackendAuth struct {
	// Scheme is none (default), bearer (Authorization: Bearer), api_key (Header) or
	// oauth (an OAuth access token per caller or per gateway; config servers only).
	Scheme BackendAuthScheme `json:"scheme,omitempty"`
	// Header carries the key when Scheme is api_key, e.g. "X-API-Key".
	Header string `json:"header,omitempty"`
}

// Values of Server.GatewayTokenHeader.
const (
	GatewayTokenAuthorization  = "authorization"
	GatewayTokenXAuthorization = "x-authorization"
)

// Default header names of ForwardIdentity.
const (
	DefaultUserHeader   = "X-MCP-User"
	DefaultGroupsHeader = "X-MCP-Groups"
)

// ForwardIdentity names the headers that carry the caller's identity to the upstream.
type ForwardIdentity struct {
	// UserHeader carries the subject. Default X-MCP-User.
	UserHeader string `json:"user_header,omitempty"`
	// GroupsHeader carries the groups, comma-separated. Default X-MCP-Groups.
	GroupsHeader string `json:"groups_header,omitempty"`
}

// Source records who owns a server record.
type Source string

const (
	// SourceConfig records come from the Caddy config and are replaced on every load.
	SourceConfig Source = "config"
	// SourceAPI records were registered at runtime and survive config reloads.
	SourceAPI Source = "api"
)

// Server is one approved MCP server in the registry.
type Server struct {
	// Name identifies the server: lower-case letters, digits, '.', '_' and '-'.
	Name string `json:"name"`
	// Path is the URL path segment clients use: <prefix>/<path>/mcp. Defaults to Name.
	Path string `json:"path"`
	// Upstream is the server's MCP endpoint: for streamable-http the URL clients would POST
	// to (e.g. http://127.0.0.1:3000/mcp); for sse the URL of its GET event stream
	// (e.g. http://127.0.0.1:3001/sse); or builtin:<name> for an in-process server.
	Upstream string `json:"upstream"`
	// Transport is streamable-http (default) or sse.
	Transport Transport `json:"transport"`
	// Description is shown to people choosing servers.
	Description string `json:"description,omitempty"`
	// Tags group servers for search and filters.
	Tags []string `json:"tags,omitempty"`
	// Enabled servers are routed; a disabled one answers 503.
	Enabled bool `json:"enabled"`
	// BackendAuth says which credential the gateway injects towards the upstream.
	BackendAuth BackendAuth `json:"backend_auth"`
	// GatewayTokenHeader is where clients send the gateway's own token for this server
	// when the gateway has auth on: "authorization" (default; Authorization: Bearer) or
	// "x-authorization" (X-Authorization: Bearer; the client's own Authorization header
	// then passes to the upstream untouched, unless a bearer backend credential replaces it).
	GatewayTokenHeader string `json:"gateway_token_header,omitempty"`
	// ForwardIdentity, when set, sends the authenticated caller's subject and groups to
	// the upstream as headers. When nil, client-sent copies of the default headers are removed.
	ForwardIdentity *ForwardIdentity `json:"forward_identity,omitempty"`
	// ForwardClientCredentials lets the client's Cookie header and access_token query
	// parameter through to the upstream (config servers only; see ServerConfig).
	ForwardClientCredentials bool `json:"forward_client_credentials,omitempty"`
	// Source is config or api.
	Source Source `json:"source"`
	// Revision increases by one on every change (optimistic concurrency).
	Revision uint64 `json:"revision"`
	// CreatedAt and UpdatedAt are set by the store.
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
	// Origin, on a record imported from the official server.json format, says where it
	// came from: "<registry base URL>#<official name>" for a sync, "server.json#<official
	// name>" for a document posted to the admin API. A sync updates and deletes only
	// records of its own origin; records without one are never touched by it.
	Origin string `json:"origin,omitempty"`
}

// maxTags bounds the tags of one server.
const maxTags = 64

var namePattern = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]{0,62}$`)

// ValidName reports whether name can name a server (and be its path segment): 1-63
// characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit.
func ValidName(name string) bool { return namePattern.MatchString(name) }

// FieldError names the field of a server record that is wrong and why.
type FieldError struct {
	Field  string
	Reason string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Reason }

// Normalize fills defaults and validates s in place. It returns a *FieldError naming
// the first bad field.
func (s *Server) Normalize() error {
	s.Name = strings.TrimSpace(s.Name)
	if !namePattern.MatchString(s.Name) {
		return &FieldError{"name", fmt.Sprintf("%q must be 1-63 characters of a-z, 0-9, '.', '_', '-' starting with a letter or digit", s.Name)}
	}
	s.Path = strings.Trim(strings.TrimSpace(s.Path), "/")
	if s.Path == "" {
		s.Path = s.Name
	}
	if !namePattern.MatchString(s.Path) {
		return &FieldError{"path", fmt.Sprintf("%q must be one URL path segment of a-z, 0-9, '.', '_', '-'", s.Path)}
	}
	if s.Transport == "" {
		s.Transport = TransportStreamableHTTP
	}
	if s.Transport != TransportStreamableHTTP && s.Transport != TransportSSE {
		return &FieldError{"transport", fmt.Sprintf("%q is not one of streamable-http, sse", s.Transport)}
	}
	if err := validateUpstream(s.Upstream); err != nil {
		return &FieldError{"upstream", err.Error()}
	}
	if strings.HasPrefix(s.Upstream, BuiltinScheme+":") && s.Transport != TransportStreamableHTTP {
		return &FieldError{"transport", "builtin servers speak streamable-http"}
	}
	switch s.BackendAuth.Scheme {
	case "":
		s.BackendAuth.Scheme = BackendAuthNone
	case BackendAuthNone, BackendAuthBearer:
	case BackendAuthAPIKey:
		if s.BackendAuth.Header == "" {
			return &FieldError{"backend_auth.header", "api_key needs the header name that carries the key"}
		}
	case BackendAuthOAuth:
		if s.Source != SourceConfig {
			return &FieldError{"backend_auth.scheme", "oauth is declared in the Caddy config only (backend_auth oauth { … } with the OAuth client registration)"}
		}
	default:
		return &FieldError{"backend_auth.scheme", fmt.Sprintf("%q is not one of none, bearer, api_key, oauth", s.BackendAuth.Scheme)}
	}
	switch strings.ToLower(s.GatewayTokenHeader) {
	case "", GatewayTokenAuthorization:
		s.GatewayTokenHeader = ""
	case GatewayTokenXAuthorization:
		s.GatewayTokenHeader = GatewayTokenXAuthorization
	default:
		return &FieldError{"gateway_token_header", fmt.Sprintf("%q is not one of authorization, x-authorization", s.GatewayTokenHeader)}
	}
	if s.BackendAuth.Header != "" && !ValidHeaderName(s.BackendAuth.Header) {
		return &FieldError{"backend_auth.header", fmt.Sprintf("%q is not a valid header name", s.BackendAuth.Header)}
	}
	if f := s.ForwardIdentity; f != nil {
		if f.UserHeader == "" {
			f.UserHeader = DefaultUserHeader
		}
		if f.GroupsHeader == "" {
			f.GroupsHeader = DefaultGroupsHeader
		}
		if !ValidHeaderName(f.UserHeader) || !ValidHeaderName(f.GroupsHeader) || strings.EqualFold(f.UserHeader, f.GroupsHeader) {
			return &FieldError{"forward_identity", fmt.Sprintf("header names %q and %q must be two different valid header names", f.UserHeader, f.GroupsHeader)}
		}
	}
	if len(s.Description) > 4096 {
		return &FieldError{"description", "longer than 4096 bytes"}
	}
	if len(s.Tags) > maxTags {
		return &FieldError{"tags", fmt.Sprintf("at most %d tags", maxTags)}
	}
	for _, t := range s.Tags {
		if t == "" || len(t) > 64 {
			return &FieldError{"tags", fmt.Sprintf("%q must be 1-64 bytes", t)}
		}
	}
	if s.Source == "" {
		s.Source = SourceAPI
	}
	if s.ForwardClientCredentials && s.Source != SourceConfig {
		return &FieldError{"forward_client_credentials", "only servers declared in the Caddy config may receive the client's cookies and access_token"}
	}
	return nil
}

func validateUpstream(raw string) error {
	if raw == "" {
		return fmt.Errorf("required")
	}
	u, err := url.Parse(raw)
	if err != nil {
		return fmt.Errorf("%q is not a URL: %v", raw, err)
	}
	switch u.Scheme {
	case "http", "https":
		if u.Host == "" {
			return fmt.Errorf("%q has no host", raw)
		}
		if u.User != nil {
			return fmt.Errorf("%q must not embed credentials; use backend_auth", raw)
		}
		if u.Fragment != "" {
			return fmt.Errorf("%q must not have a fragment", raw)
		}
	case BuiltinScheme:
		if u.Opaque == "" {
			return fmt.Errorf("%q must name a builtin server, e.g. builtin:registry", raw)
		}
	default:
		return fmt.Errorf("%q must use http, https or builtin", raw)
	}
	return nil
}

// SameDefinition reports whether a and b differ only in bookkeeping fields.
func SameDefinition(a, b *Server) bool {
	return a.Name == b.Name && a.Path == b.Path && a.Upstream == b.Upstream &&
		a.Transport == b.Transport && a.Description == b.Description &&
		slices.Equal(a.Tags, b.Tags) && a.Enabled == b.Enabled &&
		a.BackendAuth == b.BackendAuth && a.Source == b.Source &&
		a.GatewayTokenHeader == b.GatewayTokenHeader && a.Origin == b.Origin &&
		a.ForwardClientCredentials == b.ForwardClientCredentials &&
		(a.ForwardIdentity == nil) == (b.ForwardIdentity == nil) &&
		(a.ForwardIdentity == nil || *a.ForwardIdentity == *b.ForwardIdentity)
}

// ValidHeaderName reports whether name is an RFC 9110 token.
func ValidHeaderName(name string) bool {
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}

// CheckUniquePaths returns an error naming two servers of all that share a path: a
// path routes to exactly one server.
func CheckUniquePaths(all []*Server) error {
	seen := make(map[string]string, len(all))
	for _, s := range all {
		if other, ok := seen[s.Path]; ok {
			return fmt.Errorf("servers %q and %q both use path %q", other, s.Name, s.Path)
		}
		seen[s.Path] = s.Name
	}
	return nil
}

// GatewayEndpoint is the last path segment of the server's URL on the gateway: /sse for
// the legacy SSE transport, else /mcp.
func (s *Server) GatewayEndpoint() string {
	if s.Transport == TransportSSE {
		return "/sse"
	}
	return "/mcp"
}
