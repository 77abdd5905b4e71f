package mcpui

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	_ "github.com/caddymcp/caddymcp/internal/directiveorder"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_ui", parseCaddyfile)
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	u := new(UI)
	return u, u.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_ui [<matcher>] {
//		prefix         <path>      # default /ui
//		sign_in        <issuer>    # the mcp_oauth_server whose sign-in it uses; default the only one
//		public_url     <origin>    # e.g. https://mcp.example.com; default the request's origin
//		gateway_prefix <path>      # the mcp_gateway's prefix; default the root
//		auth { … }                 # required: the same block as mcp_gateway's (its policy)
//	}
func (u *UI) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	return u.Site.UnmarshalCaddyfile(d, "mcp_ui", map[string]*string{"sign_in": &u.SignIn})
}

var _ caddyfile.Unmarshaler = (*UI)(nil)
