package configapi

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymcp/caddymcp/internal/cfargs"
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
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("%s given twice", opt)
		}
		seen[opt] = true
		ok, err := h.UnmarshalOption(d, opt)
		if !ok && opt == "token_env" {
			ok = true
			h.TokenEnv, err = cfargs.One(d)
		}
		if !ok {
			return d.Errf("unknown mcp_ide_config option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Handler)(nil)
