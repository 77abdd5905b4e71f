// Package caddymcp makes Caddy an MCP gateway and registry. Importing it (xcaddy --with
// github.com/caddymcp/caddymcp) registers every caddymcp module.
package caddymcp

import (
	_ "github.com/caddymcp/caddymcp/ideconfig/configapi"
	_ "github.com/caddymcp/caddymcp/mcpgateway"
	_ "github.com/caddymcp/caddymcp/mcpregistry"
	_ "github.com/caddymcp/caddymcp/mcpregistry/registryapi"
	_ "github.com/caddymcp/caddymcp/mcpui"
	_ "github.com/caddymcp/caddymcp/oauthmeta"
	_ "github.com/caddymcp/caddymcp/oauthserver"
)
