// Package registryapi serves the mcp_registry app over HTTP. The handler
// http.handlers.mcp_registry_api (Caddyfile directive mcp_registry_api) answers the REST
// API under <prefix>/api/ (list, search, register, update, patch, toggle, delete, backend
// credential, tools, health, check now; scoped by the same policy as the gateway) and the
// official MCP Registry API v0.1 under <prefix>/v0.1/ (read-only, CORS, cached pages).
// The admin.api.mcp_registry module adds operator endpoints to Caddy's admin listener:
// backup and restore of the store, statistics, server.json import and sync.
package registryapi
