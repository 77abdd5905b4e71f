package mcpregistry

import "strings"

// MCPAudience returns a check for token audiences (RFC 8707 resource indicators) of the
// form <resource><gatewayPrefix>/<server path>/mcp (or /sse for legacy servers) naming
// a server the registry routes now. Clients ask for a token for the exact MCP URL they
// connect to, so a server registered at runtime must be accepted without a config
// reload. nil when resource is empty.
func (a *App) MCPAudience(resource, gatewayPrefix string) func(aud string) bool {
	base := strings.TrimRight(resource, "/") + gatewayPrefix + "/"
	if resource == "" {
		return nil
	}
	return func(aud string) bool {
		rest, ok := strings.CutPrefix(aud, base)
		if !ok {
			return false
		}
		seg, ep, ok := strings.Cut(rest, "/")
		if !ok {
			return false
		}
		s := a.Lookup(seg)
		return s != nil && "/"+ep == s.GatewayEndpoint()
	}
}
