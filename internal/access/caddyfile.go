package access

import (
	"slices"
	"strings"

	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymcp/caddymcp/internal/cfargs"
	"github.com/caddymcp/caddymcp/internal/policy"
)

// UnmarshalCaddyfile parses an auth block (of mcp_gateway or mcp_registry_api):
//
//	auth {
//		issuer <url> {                 # repeatable
//			jwks_url     <url>         # default: discovery from the issuer
//			audience     <aud...>      # default: resource and its MCP URLs
//			groups_claim <path>        # default "groups"
//			algorithms   <alg...>      # default RS256 PS256 ES256 EdDSA
//		}
//		resource    <url>              # public base URL, e.g. https://mcp.example.com
//		policy_file <path>             # scopes.yml layout
//		policy {                       # or inline
//			group <name> <scope...>
//			scope <name> {
//				rule <server> {
//					methods   <method...>
//					tools     <tool...>
//					prompts   <prompt...>
//					resources <uri...>
//				}
//			}
//			ui_scope <name> {           # registry permissions of a scope
//				list_service         <server...|all>
//				register_service     <server...|all>
//				toggle_service       <server...|all>
//				modify_service       <server...|all>
//				health_check_service <server...|all>
//			}
//		}
//		api_key <sha256-hex> <group...>  # repeatable
//		strict                           # housekeeping methods need a grant too
//		audience_scope per_server|any    # default per_server
//	}
func UnmarshalCaddyfile(d *caddyfile.Dispenser) (*Config, error) {
	a := new(Config)
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	some := func() ([]string, error) {
		args := d.RemainingArgs()
		if len(args) == 0 {
			return nil, d.ArgErr()
		}
		return args, nil
	}
	for nesting := d.Nesting(); d.NextBlock(nesting); {
		var err error
		switch d.Val() {
		case "issuer":
			var is Issuer
			if is.Issuer, err = cfargs.One(d); err != nil {
				return nil, err
			}
			for n := d.Nesting(); d.NextBlock(n); {
				switch d.Val() {
				case "jwks_url":
					is.JWKSURL, err = cfargs.One(d)
				case "audience":
					var v []string
					v, err = some()
					is.Audiences = append(is.Audiences, v...)
				case "groups_claim":
					is.GroupsClaim, err = cfargs.One(d)
				case "algorithms":
					var v []string
					v, err = some()
					is.Algorithms = append(is.Algorithms, v...)
				default:
					return nil, d.Errf("unknown issuer option %q", d.Val())
				}
				if err != nil {
					return nil, err
				}
			}
			a.Issuers = append(a.Issuers, is)
		case "resource":
			a.Resource, err = cfargs.One(d)
		case "policy_file":
			a.PolicyFile, err = cfargs.One(d)
		case "policy":
			if a.Policy != nil {
				return nil, d.Err("policy given twice")
			}
			a.Policy, err = unmarshalPolicy(d)
		case "strict":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			a.Strict = true
		case "audience_scope":
			if a.AudienceScope, err = cfargs.One(d); err == nil && a.AudienceScope != AudiencePerServer && a.AudienceScope != AudienceAny {
				return nil, d.Errf("audience_scope %q: want per_server or any", a.AudienceScope)
			}
		case "api_key":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return nil, d.Err("api_key needs the key's SHA-256 (hex) and at least one group")
			}
			a.APIKeys = append(a.APIKeys, APIKey{SHA256: args[0], Groups: args[1:]})
		default:
			return nil, d.Errf("unknown auth option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	return a, nil
}

func unmarshalPolicy(d *caddyfile.Dispenser) (*policy.Config, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	cfg := &policy.Config{GroupMappings: map[string][]string{}, Scopes: map[string][]policy.RuleConfig{}}
	for n := d.Nesting(); d.NextBlock(n); {
		switch d.Val() {
		case "group":
			args := d.RemainingArgs()
			if len(args) < 2 {
				return nil, d.Err("group needs a name and at least one scope")
			}
			cfg.GroupMappings[args[0]] = append(cfg.GroupMappings[args[0]], args[1:]...)
		case "scope":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if _, dup := cfg.Scopes[name]; dup {
				return nil, d.Errf("scope %q defined twice", name)
			}
			var rules []policy.RuleConfig
			for n2 := d.Nesting(); d.NextBlock(n2); {
				if d.Val() != "rule" {
					return nil, d.Errf("unknown scope option %q (want rule <server> { … })", d.Val())
				}
				var r policy.RuleConfig
				if !d.NextArg() {
					return nil, d.ArgErr()
				}
				r.Server = d.Val()
				if d.NextArg() {
					return nil, d.ArgErr()
				}
				for n3 := d.Nesting(); d.NextBlock(n3); {
					key := d.Val()
					args := d.RemainingArgs()
					if len(args) == 0 {
						return nil, d.ArgErr()
					}
					switch key {
					case "methods":
						r.Methods = append(r.Methods, args...)
					case "tools":
						r.Tools = append(r.Tools, args...)
					case "prompts":
						r.Prompts = append(r.Prompts, args...)
					case "resources":
						r.Resources = append(r.Resources, args...)
					default:
						return nil, d.Errf("unknown rule option %q (methods, tools, prompts, resources)", key)
					}
				}
				rules = append(rules, r)
			}
			cfg.Scopes[name] = rules
		case "ui_scope":
			if !d.NextArg() {
				return nil, d.ArgErr()
			}
			name := d.Val()
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if _, dup := cfg.UIScopes[name]; dup {
				return nil, d.Errf("ui_scope %q defined twice", name)
			}
			perms := map[string][]string{}
			for n2 := d.Nesting(); d.NextBlock(n2); {
				perm := d.Val()
				if !slices.Contains(uiPermissionNames, perm) {
					return nil, d.Errf("unknown ui_scope permission %q (%s)", perm, strings.Join(uiPermissionNames, ", "))
				}
				servers := d.RemainingArgs()
				if len(servers) == 0 {
					return nil, d.Errf("%s needs at least one server name or all", perm)
				}
				perms[perm] = append(perms[perm], servers...)
			}
			if cfg.UIScopes == nil {
				cfg.UIScopes = map[string]map[string][]string{}
			}
			cfg.UIScopes[name] = perms
		default:
			return nil, d.Errf("unknown policy option %q (group, scope, ui_scope)", d.Val())
		}
	}
	return cfg, nil
}

// uiPermissionNames are the permissions a ui_scope may grant.
var uiPermissionNames = []string{
	string(policy.ListService), string(policy.RegisterService), string(policy.ToggleService),
	string(policy.ModifyService), string(policy.HealthCheckService),
}
