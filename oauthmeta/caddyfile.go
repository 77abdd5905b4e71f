package oauthmeta

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymcp/caddymcp/internal/cfargs"
	_ "github.com/caddymcp/caddymcp/internal/directiveorder"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_oauth_metadata", parseCaddyfile)
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	p := new(ProtectedResourceMetadata)
	return p, p.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_oauth_metadata {
//		resource               <origin>
//		authorization_servers  <issuer...>
//		scopes_supported       <scope...>
//		resource_name          <text>
//		resource_documentation <url>
//	}
func (p *ProtectedResourceMetadata) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "resource":
			p.Resource, err = cfargs.One(d)
		case "authorization_servers":
			p.AuthorizationServers = append(p.AuthorizationServers, d.RemainingArgs()...)
			if len(p.AuthorizationServers) == 0 {
				return d.ArgErr()
			}
		case "scopes_supported":
			p.ScopesSupported = append(p.ScopesSupported, d.RemainingArgs()...)
			if len(p.ScopesSupported) == 0 {
				return d.ArgErr()
			}
		case "resource_name":
			p.ResourceName, err = cfargs.One(d)
		case "resource_documentation":
			p.ResourceDocumentation, err = cfargs.One(d)
		default:
			return d.Errf("unknown mcp_oauth_metadata option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*ProtectedResourceMetadata)(nil)
