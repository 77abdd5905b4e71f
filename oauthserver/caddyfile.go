package oauthserver

import (
	"strconv"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"
	"github.com/caddyserver/caddy/v2/modules/caddyhttp"

	"github.com/caddymcp/caddymcp/internal/cfargs"
)

func init() {
	httpcaddyfile.RegisterHandlerDirective("mcp_oauth_server", parseCaddyfile)
	// Sign-in and token endpoints answer before the gateway and any authentication
	// handler of the site: they are how a client gets its credentials.
	httpcaddyfile.RegisterDirectiveOrder("mcp_oauth_server", httpcaddyfile.Before, "basic_auth")
}

func parseCaddyfile(h httpcaddyfile.Helper) (caddyhttp.MiddlewareHandler, error) {
	s := new(Server)
	return s, s.UnmarshalCaddyfile(h.Dispenser)
}

// UnmarshalCaddyfile sets up the handler from Caddyfile tokens. Syntax:
//
//	mcp_oauth_server <issuer> {
//		resource                   <url>          # default: the issuer's origin
//		client <id> {                              # pre-registered client, repeatable
//			secret       <bcrypt hash | {env.*}>   # confidential; absent: public (PKCE)
//			jwks         <JWK Set JSON | {file.*}> # or confidential with private_key_jwt
//			redirect_uri <uri...>                  # absent: any loopback URI
//			name         <text>
//			groups       <group...>                # allows client_credentials
//			public                                 # say explicitly that it has no secret
//		}
//		user <name> <bcrypt hash> {                # local user, repeatable; block optional
//			groups <group...>
//		}
//		first_user [<name>] {                      # made on a first start with no user at all
//			groups   <group...>
//			password <secret>                      # e.g. {env.MCP_ADMIN_PASSWORD}; absent: random, logged once
//		}
//		scopes_supported           <scope...>
//		access_token_lifetime      <duration>     # default 1h
//		refresh_token_lifetime     <duration>     # default 30d
//		key_rotation               <duration>     # default 30d
//		personal_token_max_lifetime <duration>    # default 90d
//		signing_key_encryption_key <secret>       # 32 bytes hex/base64, e.g. {env.MCP_OAUTH_KEY}
//		registration off | registration_rate <per minute per IP>   # DCR; default on, 10
//		cimd off
//		cimd_allow                 <cidr...>      # private networks CIMD may fetch from
//		identity_provider <name> {                 # sign-in through the company's OpenID provider, repeatable
//			issuer               <url>
//			client_id            <id>
//			client_secret        <secret>            # e.g. {env.IDP_CLIENT_SECRET}; absent: public client
//			display_name         <text>
//			scopes               <scope...>          # default: openid profile email
//			username_claim       <claim>             # default: preferred_username
//			groups_claim         <claim path>        # default: groups
//			group                <provider value> <group>   # repeatable
//			allowed_groups       <group...>          # only their members may sign in
//			reauthenticate_after <duration>          # default 12h
//			inactive_after       <duration>          # default 30d
//		}
//		password_sign_in off                       # only the identity providers
//	}
func (s *Server) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // directive name
	if !d.NextArg() {
		return d.Err("mcp_oauth_server needs the issuer URL as its argument")
	}
	s.Issuer = d.Val()
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for d.NextBlock(0) {
		opt := d.Val()
		if opt != "client" && opt != "user" && opt != "cimd_allow" && opt != "scopes_supported" && opt != "identity_provider" {
			if seen[opt] {
				return d.Errf("%s given twice", opt)
			}
			seen[opt] = true
		}
		var err error
		switch opt {
		case "resource":
			s.Resource, err = cfargs.One(d)
		case "client":
			err = s.unmarshalClient(d)
		case "user":
			err = s.unmarshalUser(d)
		case "scopes_supported":
			s.ScopesSupported = append(s.ScopesSupported, d.RemainingArgs()...)
			if len(s.ScopesSupported) == 0 {
				return d.ArgErr()
			}
		case "first_user":
			err = s.unmarshalFirstUser(d)
		case "personal_token_max_lifetime":
			s.PersonalTokenMaxLifetime, err = cfargs.Duration(d)
		case "access_token_lifetime":
			s.AccessTokenLifetime, err = cfargs.Duration(d)
		case "refresh_token_lifetime":
			s.RefreshTokenLifetime, err = cfargs.Duration(d)
		case "key_rotation":
			s.KeyRotation, err = cfargs.Duration(d)
		case "signing_key_encryption_key":
			s.SigningKeyEncryptionKey, err = cfargs.One(d)
		case "registration":
			var v string
			if v, err = cfargs.One(d); err == nil && v != "off" {
				return d.Errf("registration takes only off, got %q", v)
			}
			s.DisableRegistration = true
		case "registration_rate":
			var v string
			if v, err = cfargs.One(d); err == nil {
				n, perr := strconv.Atoi(v)
				if perr != nil || n < 1 || n > 100000 {
					return d.Errf("bad registration_rate %q: want a number of registrations per minute", v)
				}
				s.RegistrationRate = n
			}
		case "cimd":
			var v string
			if v, err = cfargs.One(d); err == nil && v != "off" {
				return d.Errf("cimd takes only off, got %q", v)
			}
			s.DisableCIMD = true
		case "cimd_allow":
			s.CIMDAllow = append(s.CIMDAllow, d.RemainingArgs()...)
			if len(s.CIMDAllow) == 0 {
				return d.ArgErr()
			}
		case "identity_provider":
			err = s.unmarshalIdentityProvider(d)
		case "password_sign_in":
			var v string
			if v, err = cfargs.One(d); err == nil && v != "off" {
				return d.Errf("password_sign_in takes only off, got %q", v)
			}
			s.DisablePasswordSignIn = true
		default:
			return d.Errf("unknown mcp_oauth_server option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	if s.DisableRegistration && s.RegistrationRate != 0 {
		return d.Err("registration off with registration_rate")
	}
	return nil
}

func (s *Server) unmarshalClient(d *caddyfile.Dispenser) error {
	id, err := cfargs.One(d)
	if err != nil {
		return err
	}
	for _, c := range s.Clients {
		if c.ID == id {
			return d.Errf("client %q given twice", id)
		}
	}
	c := ClientConfig{ID: id}
	public := false
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("client %q: %s given twice", id, opt)
		}
		seen[opt] = true
		switch opt {
		case "secret":
			c.Secret, err = cfargs.One(d)
		case "jwks":
			c.JWKS, err = cfargs.One(d)
		case "redirect_uri":
			c.RedirectURIs = d.RemainingArgs()
			if len(c.RedirectURIs) == 0 {
				return d.ArgErr()
			}
		case "name":
			c.Name, err = cfargs.One(d)
		case "groups":
			c.Groups = d.RemainingArgs()
			if len(c.Groups) == 0 {
				return d.ArgErr()
			}
		case "public":
			if d.NextArg() {
				return d.ArgErr()
			}
			public = true
		default:
			return d.Errf("unknown client option %q", opt)
		}
		if err != nil {
			return err
		}
	}
	if public && (c.Secret != "" || c.JWKS != "") {
		return d.Errf("client %q: public with a secret or keys", id)
	}
	s.Clients = append(s.Clients, c)
	return nil
}

func (s *Server) unmarshalUser(d *caddyfile.Dispenser) error {
	args := d.RemainingArgs()
	if len(args) != 2 {
		return d.Err("user takes a name and a bcrypt hash")
	}
	for _, u := range s.Users {
		if u.Name == args[0] {
			return d.Errf("user %q given twice", args[0])
		}
	}
	u := UserConfig{Name: args[0], PasswordHash: args[1]}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		switch d.Val() {
		case "groups":
			if u.Groups != nil {
				return d.Errf("user %q: groups given twice", u.Name)
			}
			u.Groups = d.RemainingArgs()
			if len(u.Groups) == 0 {
				return d.ArgErr()
			}
		default:
			return d.Errf("unknown user option %q", d.Val())
		}
	}
	s.Users = append(s.Users, u)
	return nil
}

func (s *Server) unmarshalFirstUser(d *caddyfile.Dispenser) error {
	f := &FirstUserConfig{}
	if d.NextArg() {
		f.Name = d.Val()
	}
	if d.NextArg() {
		return d.ArgErr()
	}
	seen := map[string]bool{}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		opt := d.Val()
		if seen[opt] {
			return d.Errf("first_user: %s given twice", opt)
		}
		seen[opt] = true
		switch opt {
		case "groups":
			f.Groups = d.RemainingArgs()
			if len(f.Groups) == 0 {
				return d.ArgErr()
			}
		case "password":
			var err error
			if f.Password, err = cfargs.One(d); err != nil {
				return err
			}
		default:
			return d.Errf("unknown first_user option %q", opt)
		}
	}
	s.FirstUser = f
	return nil
}

var _ caddyfile.Unmarshaler = (*Server)(nil)
