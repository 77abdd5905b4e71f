package mcpregistry

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/caddymcp/caddymcp/internal/policy"
	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/search"
)

// ServerSummary is what the registry's MCP tools tell a client about a server. It never
// includes the upstream URL or credentials: clients reach servers through the gateway.
type ServerSummary struct {
	Name        string   `json:"name"`
	Path        string   `json:"path"`
	Description string   `json:"description,omitempty"`
	Tags        []string `json:"tags,omitempty"`
	Enabled     bool     `json:"enabled"`
	Transport   string   `json:"transport"`
	// Health is healthy, unhealthy, auth_required or unknown. Unhealthy servers are still listed.
	Health string `json:"health,omitempty"`
}

func (a *App) summarize(s *model.Server) ServerSummary {
	h, _ := a.Health(s.Name)
	return ServerSummary{
		Name: s.Name, Path: s.Path, Description: s.Description, Tags: s.Tags,
		Enabled: s.Enabled, Transport: string(s.Transport), Health: string(h.Status),
	}
}

type serverHealthInput struct {
	Name string `json:"name" jsonschema:"the server's name"`
}

// ServerHealthSummary is what the server_health tool reports: no upstream, no schemas.
type ServerHealthSummary struct {
	Server          string    `json:"server"`
	Status          string    `json:"status"`
	LatencyMS       float64   `json:"latency_ms,omitempty"`
	LastError       string    `json:"last_error,omitempty"`
	ProtocolVersion string    `json:"protocol_version,omitempty"`
	CheckedAt       time.Time `json:"checked_at,omitzero"`
	LastHealthyAt   time.Time `json:"last_healthy_at,omitzero"`
	Tools           []string  `json:"tools"`
	Prompts         int       `json:"prompts"`
	Resources       int       `json:"resources"`
}

type listServersInput struct {
	Tag             string `json:"tag,omitempty" jsonschema:"only servers carrying this tag"`
	IncludeDisabled bool   `json:"include_disabled,omitempty" jsonschema:"also list disabled servers"`
}

type listServersOutput struct {
	Servers []ServerSummary `json:"servers"`
}

type getServerInput struct {
	Name string `json:"name" jsonschema:"the server's name"`
}

type searchToolsInput struct {
	Query string `json:"query" jsonschema:"what you are looking for, in plain words (e.g. open a pull request)"`
	Limit *int   `json:"limit,omitempty" jsonschema:"at most this many results (1 to 100, default 10)"`
	// IncludeSchemas adds each tool's input schema to its result.
	IncludeSchemas bool `json:"include_schemas,omitempty" jsonschema:"add each tool's input schema, to call it at once"`
}

type searchToolsOutput struct {
	Results []SearchResult `json:"results"`
}

// registryTools describes the builtin server's own tools; search_tools finds them too.
var registryTools = []model.ToolInfo{
	{Name: "list_servers", Description: "List the MCP servers approved in this registry, optionally by tag."},
	{Name: "get_server", Description: "Describe one MCP server of the registry: path, description, tags, status."},
	{Name: "search_tools", Description: "Search MCP servers and their tools in plain words (names, descriptions, tags, argument names), best matches first; each result says whether it is a server or a tool and carries the server's MCP URL, and with include_schemas the tool's input schema."},
	{Name: "server_health", Description: "Report one MCP server's health: status, latency, last error, protocol version and the names of its tools."},
	{Name: "list_tools_of_server", Description: "List the tools one MCP server of the registry offers, with their descriptions and input schemas."},
	{Name: "register_server", Description: "Register a new MCP server in the registry (admin): it is routable through the gateway at once."},
	{Name: "toggle_server", Description: "Enable or disable an MCP server of the registry (admin); a disabled server answers 503."},
}

type listToolsOfServerInput struct {
	Name string `json:"name" jsonschema:"the server's name"`
}

// ToolDetail is one tool of list_tools_of_server.
type ToolDetail struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// InputSchema is the tool's JSON Schema for its arguments, as the server sent it.
	InputSchema any `json:"input_schema,omitempty"`
}

type listToolsOfServerOutput struct {
	Server string       `json:"server"`
	Tools  []ToolDetail `json:"tools"`
}

type registerServerInput struct {
	Name        string   `json:"name" jsonschema:"the new server's name: lower-case letters, digits, '.', '_', '-'"`
	Upstream    string   `json:"upstream" jsonschema:"the server's MCP endpoint URL (for sse: its event stream URL)"`
	Transport   string   `json:"transport,omitempty" jsonschema:"streamable-http (default) or sse"`
	Description string   `json:"description,omitempty" jsonschema:"what the server is for"`
	Tags        []string `json:"tags,omitempty" jsonschema:"tags for search and filters"`
	Path        string   `json:"path,omitempty" jsonschema:"the gateway path segment (default: the name)"`
}

type toggleServerInput struct {
	Name    string `json:"name" jsonschema:"the server's name"`
	Enabled bool   `json:"enabled" jsonschema:"true to enable the server, false to disable it"`
}

// Authorization of the registry's MCP tools. When the gateway has authentication on, it
// puts the caller (principal.Caller) into the context of requests to builtin servers,
// and the tools honour the caller's UI scopes: a server the caller may not
// list_service is hidden (it behaves as if it did not exist), register_server needs
// register_service and toggle_server toggle_service for that server (or all). With no
// caller in the context, authentication is off and everything is allowed, like every
// other request through such a gateway.

// Allowed reports whether the context's caller holds the UI permission perm on server;
// true without a caller (no authentication configured).
func Allowed(ctx context.Context, perm policy.UIPermission, server string) bool {
	c, ok := principal.FromContext(ctx)
	return !ok || c.Grant.AllowUI(perm, server)
}

// VisibleServer returns the named server if the context's caller may list it, else nil.
func (a *App) VisibleServer(ctx context.Context, name string) *model.Server {
	s := a.Server(name)
	if s == nil || !Allowed(ctx, policy.ListService, s.Name) {
		return nil
	}
	return s
}

// NoServerError is the error for a name the registry does not hold (or the caller may
// not see: the two read alike so that names do not leak).
func NoServerError(name string) error { return fmt.Errorf("no server named %q in the registry", name) }

// DeniedError explains that the caller lacks perm on the named server and what to ask for.
func DeniedError(perm policy.UIPermission, name string) error {
	return fmt.Errorf("permission denied: %s on server %q is not granted to you (ask for a UI scope with %s for it or all)", perm, name, perm)
}

// writeError turns an error of App.Put or App.SetEnabled into a tool error message
// that names the field at fault.
func writeError(name string, err error) error {
	var fe *model.FieldError
	switch {
	case errors.As(err, &fe):
		return fmt.Errorf("invalid %s: %s", fe.Field, fe.Reason)
	case errors.Is(err, model.ErrRevisionMismatch):
		return fmt.Errorf("name: a server named %q already exists", name)
	case errors.Is(err, model.ErrPathConflict):
		return fmt.Errorf("invalid path: %v", err)
	case errors.Is(err, model.ErrNotFound):
		return NoServerError(name)
	}
	return err
}

func newRegistryMCPHandler(a *App) http.Handler {
	server := mcp.NewServer(&mcp.Implementation{Name: "caddymcp-registry", Title: "MCP Registry", Version: "0.1.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "list_servers", Description: registryTools[0].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in listServersInput) (*mcp.CallToolResult, listServersOutput, error) {
			out := listServersOutput{Servers: []ServerSummary{}}
			for _, s := range a.ListServers() {
				if (!s.Enabled && !in.IncludeDisabled) || (in.Tag != "" && !slices.Contains(s.Tags, in.Tag)) || !Allowed(ctx, policy.ListService, s.Name) {
					continue
				}
				out.Servers = append(out.Servers, a.summarize(s))
			}
			return nil, out, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "get_server", Description: registryTools[1].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in getServerInput) (*mcp.CallToolResult, ServerSummary, error) {
			s := a.VisibleServer(ctx, in.Name)
			if s == nil {
				return nil, ServerSummary{}, NoServerError(in.Name)
			}
			return nil, a.summarize(s), nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "search_tools", Description: registryTools[2].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in searchToolsInput) (*mcp.CallToolResult, searchToolsOutput, error) {
			query, limit, err := CheckSearch(in.Query, in.Limit)
			if err != nil {
				return nil, searchToolsOutput{}, fmt.Errorf("invalid %w", err)
			}
			hits := a.SearchVisible(ctx, query, limit)
			return nil, searchToolsOutput{Results: a.SearchResults(hits, gatewayBase(ctx), in.IncludeSchemas)}, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "server_health", Description: registryTools[3].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in serverHealthInput) (*mcp.CallToolResult, ServerHealthSummary, error) {
			s := a.VisibleServer(ctx, in.Name)
			if s == nil {
				return nil, ServerHealthSummary{}, NoServerError(in.Name)
			}
			h, ok := a.Health(in.Name)
			if !ok {
				return nil, ServerHealthSummary{}, NoServerError(in.Name)
			}
			out := ServerHealthSummary{
				Server: h.Server, Status: string(h.Status), LatencyMS: h.LatencyMS, LastError: h.LastError,
				ProtocolVersion: h.ProtocolVersion, CheckedAt: h.CheckedAt, LastHealthyAt: h.LastHealthyAt,
				Tools: []string{}, Prompts: len(VisiblePrompts(ctx, s.Name, h.Prompts)), Resources: len(VisibleResources(ctx, s.Name, h.Resources)),
			}
			for _, t := range a.VisibleTools(ctx, s) {
				out.Tools = append(out.Tools, t.Name)
			}
			return nil, out, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "list_tools_of_server", Description: registryTools[4].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in listToolsOfServerInput) (*mcp.CallToolResult, listToolsOfServerOutput, error) {
			s := a.VisibleServer(ctx, in.Name)
			if s == nil {
				return nil, listToolsOfServerOutput{}, NoServerError(in.Name)
			}
			out := listToolsOfServerOutput{Server: s.Name, Tools: []ToolDetail{}}
			for _, t := range a.VisibleTools(ctx, s) {
				d := ToolDetail{Name: t.Name, Description: t.Description}
				if len(t.InputSchema) > 0 {
					var schema any
					if json.Unmarshal(t.InputSchema, &schema) == nil {
						d.InputSchema = schema
					}
				}
				out.Tools = append(out.Tools, d)
			}
			return nil, out, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "register_server", Description: registryTools[5].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in registerServerInput) (*mcp.CallToolResult, ServerSummary, error) {
			if !Allowed(ctx, policy.RegisterService, in.Name) {
				return nil, ServerSummary{}, DeniedError(policy.RegisterService, in.Name)
			}
			if strings.HasPrefix(in.Upstream, model.BuiltinScheme+":") {
				return nil, ServerSummary{}, fmt.Errorf("invalid upstream: builtin servers cannot be registered through this tool")
			}
			if err := a.CheckRuntimeUpstream(ctx, in.Upstream); err != nil {
				return nil, ServerSummary{}, writeError(in.Name, err)
			}
			rec, err := a.Put(ctx, &model.Server{
				Name: in.Name, Upstream: in.Upstream, Transport: model.Transport(in.Transport), Description: in.Description,
				Tags: in.Tags, Path: in.Path, Enabled: true, Source: model.SourceAPI,
			}, 0)
			if err != nil {
				return nil, ServerSummary{}, writeError(in.Name, err)
			}
			return nil, a.summarize(rec), nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "toggle_server", Description: registryTools[6].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in toggleServerInput) (*mcp.CallToolResult, ServerSummary, error) {
			if a.VisibleServer(ctx, in.Name) == nil {
				return nil, ServerSummary{}, NoServerError(in.Name)
			}
			if !Allowed(ctx, policy.ToggleService, in.Name) {
				return nil, ServerSummary{}, DeniedError(policy.ToggleService, in.Name)
			}
			rec, err := a.SetEnabled(ctx, in.Name, in.Enabled, model.AnyRevision)
			if err != nil {
				return nil, ServerSummary{}, writeError(in.Name, err)
			}
			return nil, a.summarize(rec), nil
		})
	h := mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{
		Stateless:    true,
		JSONResponse: true,
		// The gateway in front validates Host and Origin itself.
		DisableLocalhostProtection: true,
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { h.ServeHTTP(w, withGatewayBase(r)) })
}

// ToolsOf returns the tools known for s: the builtin server's own, or those found by
// the last successful health check.
func (a *App) ToolsOf(s *model.Server) []model.ToolInfo {
	if isBuiltin(s) {
		return a.builtinTools(s)
	}
	h, _ := a.Health(s.Name)
	return h.Tools
}

func sortServers(s []*model.Server) {
	slices.SortFunc(s, func(a, b *model.Server) int { return strings.Compare(a.Name, b.Name) })
}

// SearchVisible is Search limited to the servers the context's caller may list: it asks
// for more results until limit visible ones are found or the index has no more.
func (a *App) SearchVisible(ctx context.Context, query string, limit int) []search.Hit {
	if _, ok := principal.FromContext(ctx); !ok {
		return a.SearchContext(ctx, query, limit)
	}
	allowed := map[string]bool{}
	for n := limit; ; n *= 4 {
		hits := a.SearchContext(ctx, query, n)
		out := make([]search.Hit, 0, limit)
		for _, h := range hits {
			ok, seen := allowed[h.Server]
			if !seen {
				ok = Allowed(ctx, policy.ListService, h.Server)
				allowed[h.Server] = ok
			}
			if ok && (h.Tool == "" || ToolVisible(ctx, h.Server, h.Tool)) {
				out = append(out, h)
				if len(out) == limit {
					return out
				}
			}
		}
		if len(hits) < n {
			return out
		}
	}
}
