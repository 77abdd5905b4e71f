package configapi

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	_ "github.com/caddymcp/caddymcp/internal/directiveorder"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_ide_config", parseCaddyfile)
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	c := new(Handler)
	return c, c.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_ide_config [<matcher>] {
//		prefix         <path>      # default /ide-config
//		public_url     <origin>    # e.g. https://mcp.example.com; default the request's origin
//		gateway_prefix <path>      # the mcp_gateway's prefix; default the root
//		token_env      <VAR>       # the variable auth=token configurations read; default CADDYMCP_TOKEN
//		auth { … }                 # the same block as mcp_gateway's
//	}
func (h *Handler) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return h.Site.UnmarshalCaddyfile(d, "mcp_ide_config", map[string]*string{"token_env": &h.TokenEnv})
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
