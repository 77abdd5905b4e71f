package mcpgateway

import "strings"

// endpoint is which MCP endpoint of a server a request path names.
type endpoint uint8

const (
	endpointMCP             endpoint = iota + 1 // <prefix>/<server>/mcp[/…]: streamable HTTP
	endpointSSE                                 // <prefix>/<server>/sse: legacy event stream
	endpointMessage                             // <prefix>/<server>/message: legacy POST endpoint
	endpointConnect                             // <prefix>/<server>/connect: connect page (backend_auth oauth)
	endpointConnectCallback                     // <prefix>/<server>/connect/callback: the upstream's redirect back
	endpointConnectMetadata                     // <prefix>/<server>/connect/client-metadata.json: the gateway's client ID metadata document
)

// splitRoute parses path as <prefix>/<segment>/<endpoint>[sub]. prefix is "" for the
// root or "/a/b" without a trailing slash. sub is what follows "/mcp" (empty or
// starting with '/'). ok is false for paths that are not the gateway's.
func splitRoute(path, prefix string) (segment, sub string, ep endpoint, ok bool) {
	if !strings.HasPrefix(path, prefix) {
		return "", "", 0, false
	}
	rest := path[len(prefix):]
	if len(rest) < 2 || rest[0] != '/' {
		return "", "", 0, false
	}
	rest = rest[1:]
	slash := strings.IndexByte(rest, '/')
	if slash <= 0 {
		return "", "", 0, false
	}
	segment, rest = rest[:slash], rest[slash+1:]
	switch {
	case rest == "mcp":
		return segment, "", endpointMCP, true
	case strings.HasPrefix(rest, "mcp/"):
		return segment, rest[3:], endpointMCP, true
	case rest == "sse":
		return segment, "", endpointSSE, true
	case rest == "message":
		return segment, "", endpointMessage, true
	case rest == "connect":
		return segment, "", endpointConnect, true
	case rest == "connect/callback":
		return segment, "", endpointConnectCallback, true
	case rest == "connect/client-metadata.json":
		return segment, "", endpointConnectMetadata, true
	}
	return "", "", 0, false
}

// joinQuery appends the client's query to the upstream URL's own.
func joinQuery(upstream, client string) string {
	switch {
	case upstream == "":
		return client
	case client == "":
		return upstream
	}
	return upstream + "&" + client
}
