// Package published holds what the handlers that show the gateway's servers to people
// (mcp_ide_config, mcp_ui) share: where they are mounted, the gateway's public URL
// and prefix their links use, and the auth block whose policy decides what each
// caller sees.
package published

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/internal/access"
	"github.com/caddymcp/caddymcp/internal/cfargs"
	"github.com/caddymcp/caddymcp/internal/origin"
	"github.com/caddymcp/caddymcp/mcpregistry"
)

// Site is where a handler is mounted and which gateway it publishes.
type Site struct {
	// Prefix is the path the handler answers under. Default: the handler's own.
	Prefix string `json:"prefix,omitempty"`

	// PublicURL is the origin clients reach the gateway at (scheme://host[:port]).
	// Default: the origin of the request.
	PublicURL string `json:"public_url,omitempty"`

	// GatewayPrefix is the mcp_gateway handler's prefix, so server URLs are
	// <public_url><gateway_prefix>/<path>/mcp. Default: the root.
	GatewayPrefix string `json:"gateway_prefix,omitempty"`

	// Auth authenticates callers exactly like mcp_gateway's auth block (share one
	// Caddyfile snippet); its policy's list_service decides which servers each caller
	// sees.
	Auth *access.Config `json:"auth,omitempty"`
}

// Provision cleans the fields (defaultPrefix when Prefix is unset) and returns the
// registry and, when Auth is set, its authenticator. module names the handler in
// errors.
func (s *Site) Provision(ctx caddy.Context, logger *zap.Logger, module, defaultPrefix string) (*mcpregistry.App, *access.Authenticator, error) {
	s.Prefix = cleanPrefix(s.Prefix, defaultPrefix)
	s.GatewayPrefix = cleanPrefix(s.GatewayPrefix, "")
	s.PublicURL = strings.TrimRight(s.PublicURL, "/")
	if s.PublicURL != "" {
		if u, err := url.Parse(s.PublicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" {
			return nil, nil, fmt.Errorf("%s: public_url %q must be an origin: http(s)://host[:port]", module, s.PublicURL)
		}
	}
	v, err := ctx.App("mcp_registry")
	if err != nil {
		return nil, nil, fmt.Errorf("%s: loading the mcp_registry app: %w", module, err)
	}
	app := v.(*mcpregistry.App)
	if s.Auth == nil {
		return app, nil, nil
	}
	auth, err := access.New(ctx, logger, s.Auth, app.MCPAudience(s.Auth.Resource, s.GatewayPrefix), app.LocalIssuers())
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", module, err)
	}
	return app, auth, nil
}

// GatewayBase is the gateway's public URL for r: origin and prefix.
func (s *Site) GatewayBase(r *http.Request) string {
	return origin.Resolve(s.PublicURL, r) + s.GatewayPrefix
}

// UnmarshalCaddyfile reads a handler's directive: no argument, then a block of Site's
// options and the handler's own, each a single value given once: own maps an option
// name to the field it sets.
func (s *Site) UnmarshalCaddyfile(d *caddyfile.Dispenser, directive string, own map[string]*string) error {
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
		ok, err := s.unmarshalOption(d, opt)
		if field, mine := own[opt]; !ok && mine {
			ok = true
			*field, err = cfargs.One(d)
		}
		if !ok {
			return d.Errf("unknown %s option %q", directive, opt)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// unmarshalOption reads one of Site's Caddyfile options (prefix, public_url,
// gateway_prefix, auth); false when opt is none of them.
func (s *Site) unmarshalOption(d *caddyfile.Dispenser, opt string) (bool, error) {
	var err error
	switch opt {
	case "prefix":
		s.Prefix, err = cfargs.One(d)
	case "public_url":
		s.PublicURL, err = cfargs.One(d)
	case "gateway_prefix":
		s.GatewayPrefix, err = cfargs.One(d)
	case "auth":
		s.Auth, err = access.UnmarshalCaddyfile(d)
	default:
		return false, nil
	}
	return true, err
}

func cleanPrefix(p, def string) string {
	if p == "" {
		p = def
	}
	p = strings.TrimRight(p, "/")
	if p != "" && !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	return p
}
