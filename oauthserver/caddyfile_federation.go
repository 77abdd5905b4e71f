package oauthserver

import (
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymcp/caddymcp/internal/cfargs"
	"github.com/caddymcp/caddymcp/oauthserver/federation"
)

// unmarshalIdentityProvider reads one identity_provider block:
//
//	identity_provider <name> {
//		issuer               <url>
//		client_id            <id>
//		client_secret        <secret>            # e.g. {env.IDP_CLIENT_SECRET}; absent: public client
//		display_name         <text>              # the button: "Sign in with <text>"
//		scopes               <scope...>          # default: openid profile email
//		username_claim       <claim>             # default: preferred_username (then email, then sub)
//		groups_claim         <claim path>|none   # default: groups; none: groups set on the admin endpoint
//		group                <provider value> <group>   # repeatable, e.g. an Entra object id
//		allowed_groups       <group...>          # only their members may sign in
//		reauthenticate_after <duration>          # default 12h
//		inactive_after       <duration>          # default 30d: personal tokens stop after that long without a sign-in
//	}
func (s *Server) unmarshalIdentityProvider(d *caddyfile.Dispenser) error {
	name, err := cfargs.One(d)
	if err != nil {
		return err
	}
	for _, p := range s.IdentityProviders {
		if p.Name == name {
			return d.Errf("identity_provider %q given twice", name)
		}
	}
	p := federation.Provider{Name: name}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if opt != "group" {
			if seen[opt] {
				return d.Errf("identity_provider %q: %s given twice", name, opt)
			}
			seen[opt] = true
		}
		switch opt {
		case "issuer":
			p.Issuer, err = cfargs.One(d)
		case "client_id":
			p.ClientID, err = cfargs.One(d)
		case "client_secret":
			p.ClientSecret, err = cfargs.One(d)
		case "display_name":
			p.DisplayName, err = cfargs.One(d)
		case "scopes":
			p.Scopes = d.RemainingArgs()
			if len(p.Scopes) == 0 {
				return d.ArgErr()
			}
		case "username_claim":
			p.UsernameClaim, err = cfargs.One(d)
		case "groups_claim":
			p.GroupsClaim, err = cfargs.One(d)
		case "group":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return d.Errf("identity_provider %q: group takes the provider's value and the group name", name)
			}
			if _, dup := p.GroupMap[args[0]]; dup {
				return d.Errf("identity_provider %q: group %q given twice", name, args[0])
			}
			if p.GroupMap == nil {
				p.GroupMap = map[string]string{}
			}
			p.GroupMap[args[0]] = args[1]
		case "allowed_groups":
			p.AllowedGroups = d.RemainingArgs()
			if len(p.AllowedGroups) == 0 {
				return d.ArgErr()
			}
		case "reauthenticate_after":
			p.ReauthenticateAfter, err = cfargs.Duration(d)
		case "inactive_after":
			p.InactiveAfter, err = cfargs.Duration(d)
		default:
			return d.Errf("unknown identity_provider option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	if p.Issuer == "" || p.ClientID == "" {
		return d.Errf("identity_provider %q needs issuer and client_id", name)
	}
	s.IdentityProviders = append(s.IdentityProviders, p)
	return nil
}
