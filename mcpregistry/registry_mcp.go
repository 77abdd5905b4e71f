package mcpregistry

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/modelcontextprotocol/go-sdk/mcp"
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
	// Health is healthy, unhealthy or unknown. Unhealthy servers are still listed.
	Health string `json:"health,omitempty"`
}

func (a *App) summarize(s *Server) ServerSummary {
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
	Limit int    `json:"limit,omitempty" jsonschema:"at most this many results (default 10, at most 100)"`
}

// SearchHit is one result of search_tools.
type SearchHit struct {
	Server      string `json:"server"`
	Tool        string `json:"tool,omitempty"`
	Description string `json:"description,omitempty"`
	// Score is the hit's BM25 relevance (higher is better; comparable within one search).
	Score float64 `json:"score"`
}

type searchToolsOutput struct {
	Results []SearchHit `json:"results"`
}

// registryTools describes the builtin server's own tools; search_tools finds them too.
var registryTools = []ToolInfo{
	{Name: "list_servers", Description: "List the MCP servers approved in this registry, optionally by tag."},
	{Name: "get_server", Description: "Describe one MCP server of the registry: path, description, tags, status."},
	{Name: "search_tools", Description: "Search MCP servers and their tools in plain words (names, descriptions, tags, argument names), best matches first."},
	{Name: "server_health", Description: "Report one MCP server's health: status, latency, last error, protocol version and the names of its tools."},
}

// ToolInfo is a tool a server offers.
type ToolInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// InputSchema is the tool's JSON Schema for its arguments, as the server sent it.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}

func newRegistryMCPHandler(a *App) http.Handler {
	server := mcp.NewServer(&mcp.Implementation{Name: "caddymcp-registry", Title: "MCP Registry", Version: "0.1.0"}, nil)
	mcp.AddTool(server, &mcp.Tool{Name: "list_servers", Description: registryTools[0].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in listServersInput) (*mcp.CallToolResult, listServersOutput, error) {
			out := listServersOutput{Servers: []ServerSummary{}}
			for _, s := range a.ListServers() {
				if (!s.Enabled && !in.IncludeDisabled) || (in.Tag != "" && !slices.Contains(s.Tags, in.Tag)) {
					continue
				}
				out.Servers = append(out.Servers, a.summarize(s))
			}
			return nil, out, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "get_server", Description: registryTools[1].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in getServerInput) (*mcp.CallToolResult, ServerSummary, error) {
			s := a.Server(in.Name)
			if s == nil {
				return nil, ServerSummary{}, fmt.Errorf("no server named %q in the registry", in.Name)
			}
			return nil, a.summarize(s), nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "search_tools", Description: registryTools[2].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in searchToolsInput) (*mcp.CallToolResult, searchToolsOutput, error) {
			if strings.TrimSpace(in.Query) == "" {
				return nil, searchToolsOutput{}, fmt.Errorf("query must not be empty")
			}
			limit := in.Limit
			if limit <= 0 {
				limit = 10
			}
			limit = min(limit, 100)
			return nil, searchToolsOutput{Results: a.Search(in.Query, limit)}, nil
		})
	mcp.AddTool(server, &mcp.Tool{Name: "server_health", Description: registryTools[3].Description},
		func(ctx context.Context, _ *mcp.CallToolRequest, in serverHealthInput) (*mcp.CallToolResult, ServerHealthSummary, error) {
			h, ok := a.Health(in.Name)
			if !ok {
				return nil, ServerHealthSummary{}, fmt.Errorf("no server named %q in the registry", in.Name)
			}
			out := ServerHealthSummary{
				Server: h.Server, Status: string(h.Status), LatencyMS: h.LatencyMS, LastError: h.LastError,
				ProtocolVersion: h.ProtocolVersion, CheckedAt: h.CheckedAt, LastHealthyAt: h.LastHealthyAt,
				Tools: []string{}, Prompts: len(h.Prompts), Resources: len(h.Resources),
			}
			for _, t := range h.Tools {
				out.Tools = append(out.Tools, t.Name)
			}
			return nil, out, nil
		})
	return mcp.NewStreamableHTTPHandler(func(*http.Request) *mcp.Server { return server }, &mcp.StreamableHTTPOptions{
		Stateless:    true,
		JSONResponse: true,
		// The gateway in front validates Host and Origin itself.
		DisableLocalhostProtection: true,
	})
}

// toolsOf returns the tools known for s: the builtin server's own, or those found by
// the last successful health check.
func (a *App) toolsOf(s *Server) []ToolInfo {
	if isBuiltin(s) {
		return a.builtinTools(s)
	}
	h, _ := a.Health(s.Name)
	return h.Tools
}

func sortServers(s []*Server) {
	slices.SortFunc(s, func(a, b *Server) int { return strings.Compare(a.Name, b.Name) })
}
