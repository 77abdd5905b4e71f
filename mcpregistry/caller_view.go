package mcpregistry

import (
	"context"

	"github.com/caddymcp/caddymcp/internal/principal"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
)

// One view per caller: every answer about a server's tools, prompts and resources —
// the REST API, search, the registry's own MCP tools — shows what the caller's
// tools/list, prompts/list and resources/list through the gateway would show, no
// more. Without a caller (authentication off) everything is shown.

// ToolVisible reports whether the context's caller would see tool in server's
// tools/list: the grant allows tools/list there and tools/call of that tool.
func ToolVisible(ctx context.Context, server, tool string) bool {
	c, ok := principal.FromContext(ctx)
	if !ok {
		return true
	}
	listed, _ := c.Grant.Allow(server, "tools/list", "")
	return listed && c.Grant.AllowTool(server, tool)
}

// VisibleTools returns s's known tools that the context's caller would see.
func (a *App) VisibleTools(ctx context.Context, s *model.Server) []model.ToolInfo {
	return visibleOnly(ctx, a.ToolsOf(s), func(c *principal.Caller, t model.ToolInfo) bool {
		return ToolVisible(ctx, s.Name, t.Name)
	})
}

// VisiblePrompts and VisibleResources are the prompts/list and resources/list views.
func VisiblePrompts(ctx context.Context, server string, all []model.PromptInfo) []model.PromptInfo {
	return visibleOnly(ctx, all, func(c *principal.Caller, p model.PromptInfo) bool {
		listed, _ := c.Grant.Allow(server, "prompts/list", "")
		return listed && c.Grant.AllowPrompt(server, p.Name)
	})
}

func VisibleResources(ctx context.Context, server string, all []model.ResourceInfo) []model.ResourceInfo {
	return visibleOnly(ctx, all, func(c *principal.Caller, r model.ResourceInfo) bool {
		listed, _ := c.Grant.Allow(server, "resources/list", "")
		return listed && c.Grant.AllowResource(server, r.URI)
	})
}

func visibleOnly[T any](ctx context.Context, all []T, keep func(*principal.Caller, T) bool) []T {
	c, ok := principal.FromContext(ctx)
	if !ok {
		return all
	}
	out := make([]T, 0, len(all))
	for _, v := range all {
		if keep(c, v) {
			out = append(out, v)
		}
	}
	return out
}
