package registryapi

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymcp/caddymcp/internal/access"
	"github.com/caddymcp/caddymcp/internal/cfargs"
	_ "github.com/caddymcp/caddymcp/internal/directiveorder"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_registry_api", parseAPICaddyfile)
}

func parseAPICaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	api := new(RegistryAPI)
	err := api.UnmarshalCaddyfile(h.Dispenser)
	return api, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_registry_api [<matcher>] {
//		prefix         <path>             # API mounted at <path>/v0.1/...; default the root
//		public_url     <origin>           # e.g. https://mcp.example.com; default the request's origin
//		gateway_prefix <path>             # the mcp_gateway's prefix; default the root
//		namespace      <reverse-dns>      # e.g. com.example; default local.caddymcp
//		auth_header_required              # remotes list the gateway token header as required
//		auth { … }                        # the REST API's auth: the same block as mcp_gateway's
//		anonymous_writes                  # without auth: let anyone write (local setups only)
//		v01_auth                          # the v0.1 API needs a token too and lists per list_service
//		v01_public all|<server...>        # what the anonymous v0.1 API lists; default all without auth, none with it
//	}
func (h *RegistryAPI) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "prefix":
			h.Prefix, err = cfargs.One(d)
		case "public_url":
			h.PublicURL, err = cfargs.One(d)
		case "gateway_prefix":
			h.GatewayPrefix, err = cfargs.One(d)
		case "namespace":
			h.Namespace, err = cfargs.One(d)
		case "auth_header_required":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AuthHeaderRequired = true
		case "auth":
			if h.Auth != nil {
				return d.Err("auth already specified")
			}
			h.Auth, err = access.UnmarshalCaddyfile(d)
		case "v01_auth":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.V01Auth = true
		case "anonymous_writes":
			if d.NextArg() {
				return d.ArgErr()
			}
			h.AnonymousWrites = true
		case "v01_public":
			if h.V01Public != nil {
				return d.Err("v01_public already specified")
			}
			h.V01Public = d.RemainingArgs()
			if len(h.V01Public) == 0 {
				return d.ArgErr()
			}
		default:
			return d.Errf("unrecognized mcp_registry_api subdirective %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// Interface guard
var _ caddyfile.Unmarshaler = (*RegistryAPI)(nil)
