package mcpregistry

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"

	"github.com/caddymcp/caddymcp/internal/origin"
	"github.com/caddymcp/caddymcp/mcpregistry/search"
)

// SearchResult is one hit as the registry's search_tools and /api/search answer it: an
// assistant can call the tool from it with no second lookup.
type SearchResult struct {
	// Kind is "server" (the server as a whole matched) or "tool".
	Kind   string `json:"kind"`
	Server string `json:"server"`
	// Tool is the tool's name (tool hits only).
	Tool        string `json:"tool,omitempty"`
	Description string `json:"description,omitempty"`
	// Score is the hit's relevance (higher is better; comparable within one search).
	Score float64 `json:"score"`
	// URL is the server's MCP endpoint through the gateway, to connect to and call.
	URL string `json:"url,omitempty"`
	// InputSchema is the tool's JSON Schema for its arguments, when asked for (a
	// decoded value: the MCP tool's output schema types it as an object).
	InputSchema any `json:"input_schema,omitempty"`
}

// SearchResults turns hits into results: gatewayBase is the gateway's public base
// (origin plus prefix) the URLs are built on; withSchemas adds each tool's input schema.
func (a *App) SearchResults(hits []search.Hit, gatewayBase string, withSchemas bool) []SearchResult {
	out := make([]SearchResult, 0, len(hits))
	for _, h := range hits {
		r := SearchResult{Kind: "server", Server: h.Server, Tool: h.Tool, Description: h.Description, Score: h.Score}
		s := a.Server(h.Server)
		if s != nil && gatewayBase != "" {
			r.URL = gatewayBase + "/" + s.Path + s.GatewayEndpoint()
		}
		if h.Tool != "" {
			r.Kind = "tool"
			if withSchemas && s != nil {
				for _, t := range a.ToolsOf(s) {
					if t.Name == h.Tool && len(t.InputSchema) > 0 {
						var schema any
						if json.Unmarshal(t.InputSchema, &schema) == nil {
							r.InputSchema = schema
						}
						break
					}
				}
			}
		}
		out = append(out, r)
	}
	return out
}

type gatewayBaseKey struct{}

// withGatewayBase records, for the registry's own MCP tools, the gateway's public base
// as the request that reached them shows it: the builtin server is served at
// <base>/<its path>/mcp.
func withGatewayBase(r *http.Request) *http.Request {
	p := r.URL.Path
	if i := strings.LastIndex(p, "/mcp"); i >= 0 {
		p = p[:i]
	}
	if i := strings.LastIndexByte(p, '/'); i >= 0 {
		p = p[:i]
	}
	return r.WithContext(context.WithValue(r.Context(), gatewayBaseKey{}, origin.Resolve("", r)+p))
}

func gatewayBase(ctx context.Context) string {
	s, _ := ctx.Value(gatewayBaseKey{}).(string)
	return s
}
