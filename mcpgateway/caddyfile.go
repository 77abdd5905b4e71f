package mcpgateway

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"
	"github.com/dustin/go-humanize"

	"github.com/caddymcp/caddymcp/internal/access"
	"github.com/caddymcp/caddymcp/internal/cfargs"
	_ "github.com/caddymcp/caddymcp/internal/directiveorder"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_gateway", parseCaddyfile)
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	g := new(Gateway)
	err := g.UnmarshalCaddyfile(h.Dispenser)
	return g, err
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_gateway [<matcher>] {
//		prefix                  <path>
//		max_body_size           <size>
//		allowed_origins         <origin...>
//		allowed_hosts           <host...>
//		dial_timeout            <duration>
//		response_header_timeout <duration>
//		session_key             <secret>  # 32 bytes base64/hex; default from the registry's encryption_key
//		auth { … }              # see access.UnmarshalCaddyfile (internal/access)
//		limits { … }            # see unmarshalLimits (limits.go)
//		audit off | audit {     # audit log on logger http.handlers.mcp_gateway.audit; default on
//			include_arguments   # add tools/call arguments (≤ 4 KiB) to entries
//		}
//	}
func (g *Gateway) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		var err error
		switch d.Val() {
		case "prefix":
			g.Prefix, err = cfargs.One(d)
		case "max_body_size":
			var v string
			if v, err = cfargs.One(d); err == nil {
				var n uint64
				n, err = humanize.ParseBytes(v)
				if err != nil || n == 0 || n > 1<<40 {
					return d.Errf("bad max_body_size %q: want a size such as 4MiB", v)
				}
				g.MaxBodySize = int64(n)
			}
		case "allowed_origins":
			g.AllowedOrigins = append(g.AllowedOrigins, d.RemainingArgs()...)
			if len(g.AllowedOrigins) == 0 {
				return d.ArgErr()
			}
		case "allowed_hosts":
			g.AllowedHosts = append(g.AllowedHosts, d.RemainingArgs()...)
			if len(g.AllowedHosts) == 0 {
				return d.ArgErr()
			}
		case "dial_timeout":
			g.DialTimeout, err = cfargs.Duration(d)
		case "response_header_timeout":
			g.ResponseHeaderTimeout, err = cfargs.Duration(d)
		case "session_key":
			g.SessionKey, err = cfargs.One(d)
		case "auth":
			if g.Auth != nil {
				return d.Err("auth given twice")
			}
			g.Auth, err = access.UnmarshalCaddyfile(d)
		case "limits":
			if g.Limits != nil {
				return d.Err("limits given twice")
			}
			g.Limits = new(LimitsConfig)
			err = unmarshalLimits(d, g.Limits)
		case "audit":
			if g.Audit != nil {
				return d.Err("audit given twice")
			}
			g.Audit = new(AuditConfig)
			switch args := d.RemainingArgs(); {
			case len(args) == 1 && args[0] == "off":
				g.Audit.Disabled = true
			case len(args) > 0:
				return d.Errf("audit takes no argument but off, got %q", args)
			}
			for nesting := d.Nesting(); d.NextBlock(nesting); {
				switch d.Val() {
				case "include_arguments":
					if d.NextArg() {
						return d.ArgErr()
					}
					g.Audit.IncludeArguments = true
				default:
					return d.Errf("unknown audit option %q", d.Val())
				}
			}
			if g.Audit.Disabled && g.Audit.IncludeArguments {
				return d.Err("audit off with include_arguments")
			}
		default:
			return d.Errf("unknown mcp_gateway option %q", d.Val())
		}
		if err != nil {
			return err
		}
	}
	return nil
}

var _ caddyfile.Unmarshaler = (*Gateway)(nil)
