// Package directiveorder places every caddymcp Caddyfile handler directive in Caddy's
// directive order, in one place. Each module package that registers a directive
// imports it, so the order is the same whichever of them a build links, and it never
// depends on the order in which Go initialises those packages.
//
// Caddy orders a plugin's directive only relative to a standard one, so two directives
// placed before the same standard directive keep the order of their registration;
// registering them here, in sequence, makes that order explicit:
//
//	mcp_oauth_metadata  before basic_auth: the protected-resource metadata answers
//	                    unauthenticated discovery, so no auth directive may run first
//	mcp_registry_api    before respond, and before mcp_gateway: it answers only its own
//	                    paths (/api/…, /v0.1/…), which the gateway must not take
//	mcp_ide_config      before respond, and before mcp_gateway: it answers only its
//	                    prefix (/ide-config/…), which a server named ide-config must not take
//	mcp_ui              before respond, and before mcp_gateway: it answers only its
//	                    prefix (/ui/…)
//	mcp_gateway         before respond: it serves <prefix>/<server>/mcp and passes the
//	                    rest on, so a site's respond/file_server still serve other paths
package directiveorder

import "github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

func init() {
	httpcaddyfile.RegisterDirectiveOrder("mcp_oauth_metadata", httpcaddyfile.Before, "basic_auth")
	httpcaddyfile.RegisterDirectiveOrder("mcp_registry_api", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("mcp_ide_config", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("mcp_ui", httpcaddyfile.Before, "respond")
	httpcaddyfile.RegisterDirectiveOrder("mcp_gateway", httpcaddyfile.Before, "respond")
}
