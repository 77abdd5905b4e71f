package mcpregistry

import (
	"strconv"
	"strings"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	"github.com/caddyserver/caddy/v2/caddyconfig/httpcaddyfile"

	"github.com/caddymcp/caddymcp/internal/cfargs"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/upstream"
)

func init() {
	httpcaddyfile.RegisterGlobalOption("mcp_registry", parseGlobalOption)
}

// parseGlobalOption sets up the mcp_registry app from the Caddyfile. Syntax:
//
//	mcp_registry {
//		storage bbolt [<path>] {
//			open_timeout <duration>
//		}
//		disable_builtin_server
//		encryption_key <secret>
//		encryption_key_file <path>           # or: a key file, generated on first start when missing
//		previous_encryption_keys <secret...>
//		tombstone_retention <duration>
//		health [off] {
//			interval    <duration>|off|0
//			timeout     <duration>
//			concurrency <n>
//			jitter      <fraction 0..1>|<percent>%
//			watch_limit <n>|off
//		}
//		runtime_upstreams {
//			schemes <http|https|builtin...>
//			allow   <cidr|address|host...>
//			deny    <cidr|address|host...>
//			resolve_timeout <duration>
//		}
//		search {
//			embeddings <url> {
//				model      <name>
//				api_key    <secret>
//				timeout    <duration>
//				batch_size <n>
//			}
//		}
//		sync <registry base URL> {
//			interval    <duration>      # default 1h
//			name_prefix <prefix>
//		}
//		server <name> [<upstream>] {
//			upstream     <url>|builtin:<name>
//			path         <segment>
//			transport    streamable-http|sse
//			description  <text>
//			tags         <tag...>
//			disabled
//			backend_auth none|bearer|api_key [<header>]
//			backend_auth oauth {
//				grant authorization_code|client_credentials|token_exchange
//				authorization_server <issuer URL>
//				token_endpoint <url>
//				registration dynamic|cimd
//				client_id <id>
//				client_secret <secret>
//				token_endpoint_auth_method client_secret_basic|client_secret_post|private_key_jwt|none
//				private_key <PEM> [<kid>]
//				scopes <scope...>
//				resource <uri>
//				redirect_uri <url>
//				audience <uri>
//				profile rfc8693|entra_obo
//			}
//			backend_credential <secret>
//			backend_header <name> <value>
//			gateway_token_header authorization|x-authorization
//			forward_client_credentials
//			forward_identity [<user_header> [<groups_header>]]
//		}
//	}
func parseGlobalOption(d *caddyfile.Dispenser, existing any) (any, error) {
	if existing != nil {
		return nil, d.Err("mcp_registry is given twice; declare everything in one block")
	}
	app := new(App)
	if err := app.UnmarshalCaddyfile(d); err != nil {
		return nil, err
	}
	return httpcaddyfile.App{Name: "mcp_registry", Value: caddyconfig.JSON(app, nil)}, nil
}

// UnmarshalCaddyfile reads the mcp_registry global option.
func (a *App) UnmarshalCaddyfile(d *caddyfile.Dispenser) error {
	d.Next() // option name
	if d.NextArg() {
		return d.ArgErr()
	}
	for d.NextBlock(0) {
		switch d.Val() {
		case "storage":
			if a.Storage != nil {
				return d.Err("storage already specified")
			}
			a.Storage = new(StorageConfig)
			if !d.NextArg() {
				return d.ArgErr()
			}
			a.Storage.Backend = d.Val()
			if d.NextArg() {
				a.Storage.Path = d.Val()
			}
			if d.NextArg() {
				return d.ArgErr()
			}
			for d.NextBlock(1) {
				switch d.Val() {
				case "open_timeout":
					if !d.NextArg() {
						return d.ArgErr()
					}
					dur, err := caddy.ParseDuration(d.Val())
					if err != nil {
						return d.Errf("bad open_timeout %q: %v", d.Val(), err)
					}
					a.Storage.OpenTimeout = caddy.Duration(dur)
				default:
					return d.Errf("unknown storage option %q", d.Val())
				}
			}
		case "disable_builtin_server":
			if d.NextArg() {
				return d.ArgErr()
			}
			a.DisableBuiltinServer = true
		case "encryption_key":
			if a.EncryptionKey != "" {
				return d.Err("encryption_key already specified")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			a.EncryptionKey = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "encryption_key_file":
			if a.EncryptionKeyFile != "" {
				return d.Err("encryption_key_file already specified")
			}
			if !d.NextArg() {
				return d.ArgErr()
			}
			a.EncryptionKeyFile = d.Val()
			if d.NextArg() {
				return d.ArgErr()
			}
		case "previous_encryption_keys":
			keys := d.RemainingArgs()
			if len(keys) == 0 {
				return d.ArgErr()
			}
			a.PreviousEncryptionKeys = append(a.PreviousEncryptionKeys, keys...)
		case "health":
			if a.HealthChecks != nil {
				return d.Err("health already specified")
			}
			hc, err := unmarshalHealth(d)
			if err != nil {
				return err
			}
			a.HealthChecks = hc
		case "runtime_upstreams":
			if a.RuntimeUpstreams != nil {
				return d.Err("runtime_upstreams already specified")
			}
			u, err := unmarshalUpstreamRules(d)
			if err != nil {
				return err
			}
			a.RuntimeUpstreams = u
		case "tombstone_retention":
			if !d.NextArg() {
				return d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return d.Errf("bad tombstone_retention %q: want a positive duration", d.Val())
			}
			a.TombstoneRetention = caddy.Duration(dur)
			if d.NextArg() {
				return d.ArgErr()
			}
		case "search":
			if a.SearchConfig != nil {
				return d.Err("search already specified")
			}
			sc, err := unmarshalSearch(d)
			if err != nil {
				return err
			}
			a.SearchConfig = sc
		case "sync":
			sc, err := unmarshalSync(d)
			if err != nil {
				return err
			}
			a.Sync = append(a.Sync, sc)
		case "server":
			s, err := unmarshalServer(d)
			if err != nil {
				return err
			}
			a.Servers = append(a.Servers, s)
		default:
			return d.Errf("unknown mcp_registry option %q", d.Val())
		}
	}
	return nil
}

// unmarshalSearch reads
//
//	search {
//		embeddings <url> {
//			model      <name>
//			api_key    <secret>
//			timeout    <duration>
//			batch_size <n>
//		}
//	}
func unmarshalSearch(d *caddyfile.Dispenser) (*SearchConfig, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	sc := new(SearchConfig)
	for n := d.Nesting(); d.NextBlock(n); {
		switch d.Val() {
		case "embeddings":
			if sc.Embeddings != nil {
				return nil, d.Err("embeddings already specified")
			}
			e, err := unmarshalEmbeddings(d)
			if err != nil {
				return nil, err
			}
			sc.Embeddings = e
		default:
			return nil, d.Errf("unknown search option %q (embeddings)", d.Val())
		}
	}
	return sc, nil
}

func unmarshalEmbeddings(d *caddyfile.Dispenser) (*EmbeddingsConfig, error) {
	e := new(EmbeddingsConfig)
	if !d.NextArg() {
		return nil, d.Err("embeddings needs the URL of an OpenAI-compatible /v1/embeddings endpoint")
	}
	e.URL = d.Val()
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var err error
	seen := map[string]bool{}
	for n := d.Nesting(); d.NextBlock(n); {
		if seen[d.Val()] {
			return nil, d.Errf("embeddings %s given twice", d.Val())
		}
		seen[d.Val()] = true
		switch d.Val() {
		case "model":
			e.Model, err = cfargs.One(d)
		case "api_key":
			e.APIKey, err = cfargs.One(d)
		case "timeout":
			var dur caddy.Duration
			dur, err = cfargs.Duration(d)
			if err == nil && dur <= 0 {
				err = d.Errf("bad embeddings timeout %v: want a positive duration", time.Duration(dur))
			}
			e.Timeout = dur
		case "batch_size":
			var v string
			if v, err = cfargs.One(d); err == nil {
				e.BatchSize, err = strconv.Atoi(v)
				if err != nil || e.BatchSize < 1 || e.BatchSize > maxEmbeddingsBatch {
					err = d.Errf("bad embeddings batch_size %q: want 1-%d", v, maxEmbeddingsBatch)
				}
			}
		default:
			return nil, d.Errf("unknown embeddings option %q (model, api_key, timeout, batch_size)", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if e.Model == "" {
		return nil, d.Err("embeddings needs a model")
	}
	return e, nil
}

// unmarshalSync reads `sync <url> { interval <duration>; name_prefix <prefix> }`.
func unmarshalSync(d *caddyfile.Dispenser) (SyncConfig, error) {
	var sc SyncConfig
	if !d.NextArg() {
		return sc, d.Err("sync needs the base URL of a registry")
	}
	sc.From = d.Val()
	if d.NextArg() {
		return sc, d.ArgErr()
	}
	for d.NextBlock(1) {
		switch d.Val() {
		case "interval":
			if !d.NextArg() {
				return sc, d.ArgErr()
			}
			dur, err := caddy.ParseDuration(d.Val())
			if err != nil || dur <= 0 {
				return sc, d.Errf("bad sync interval %q: want a positive duration", d.Val())
			}
			sc.Interval = caddy.Duration(dur)
		case "name_prefix":
			if !d.NextArg() {
				return sc, d.ArgErr()
			}
			sc.NamePrefix = d.Val()
		default:
			return sc, d.Errf("unknown sync option %q", d.Val())
		}
		if d.NextArg() {
			return sc, d.ArgErr()
		}
	}
	return sc, nil
}

func unmarshalServer(d *caddyfile.Dispenser) (*ServerConfig, error) {
	s := new(ServerConfig)
	if !d.NextArg() {
		return nil, d.Err("server needs a name")
	}
	s.Name = d.Val()
	if d.NextArg() {
		s.Upstream = d.Val()
	}
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	var err error
	for d.NextBlock(1) {
		switch d.Val() {
		case "upstream":
			s.Upstream, err = cfargs.One(d)
		case "path":
			s.Path, err = cfargs.One(d)
		case "transport":
			var t string
			t, err = cfargs.One(d)
			s.Transport = model.Transport(t)
		case "description":
			s.Description, err = cfargs.One(d)
		case "tags":
			s.Tags = d.RemainingArgs()
			if len(s.Tags) == 0 {
				err = d.ArgErr()
			}
		case "disabled":
			if d.NextArg() {
				err = d.ArgErr()
			}
			s.Disabled = true
		case "backend_auth":
			args := d.RemainingArgs()
			if len(args) == 0 || len(args) > 2 {
				return nil, d.ArgErr()
			}
			s.BackendAuth.Scheme = model.BackendAuthScheme(args[0])
			if len(args) == 2 {
				s.BackendAuth.Header = args[1]
			}
			if s.BackendAuth.Scheme == model.BackendAuthOAuth {
				if len(args) != 1 {
					return nil, d.Err("backend_auth oauth takes a block, not arguments")
				}
				if s.BackendOAuth, err = unmarshalBackendOAuth(d); err != nil {
					return nil, err
				}
			}
		case "backend_credential":
			if s.BackendCredential != "" {
				return nil, d.Err("backend_credential already specified")
			}
			s.BackendCredential, err = cfargs.One(d)
		case "backend_header":
			args := d.RemainingArgs()
			if len(args) != 2 {
				return nil, d.ArgErr()
			}
			if s.BackendHeaders == nil {
				s.BackendHeaders = map[string]string{}
			}
			if _, dup := s.BackendHeaders[args[0]]; dup {
				return nil, d.Errf("backend_header %s given twice", args[0])
			}
			s.BackendHeaders[args[0]] = args[1]
		case "gateway_token_header":
			s.GatewayTokenHeader, err = cfargs.One(d)
		case "forward_client_credentials":
			if d.NextArg() {
				return nil, d.ArgErr()
			}
			if s.ForwardClientCredentials {
				return nil, d.Err("forward_client_credentials given twice")
			}
			s.ForwardClientCredentials = true
		case "forward_identity":
			args := d.RemainingArgs()
			if len(args) > 2 {
				return nil, d.ArgErr()
			}
			s.ForwardIdentity = new(model.ForwardIdentity)
			if len(args) > 0 {
				s.ForwardIdentity.UserHeader = args[0]
			}
			if len(args) > 1 {
				s.ForwardIdentity.GroupsHeader = args[1]
			}
		default:
			return nil, d.Errf("unknown server option %q", d.Val())
		}
		if err != nil {
			return nil, err
		}
	}
	if s.Upstream == "" {
		return nil, d.Errf("server %q needs an upstream", s.Name)
	}
	return s, nil
}

// unmarshalBackendOAuth reads the block of backend_auth oauth.
func unmarshalBackendOAuth(d *caddyfile.Dispenser) (*UpstreamOAuthConfig, error) {
	c := new(UpstreamOAuthConfig)
	seen := map[string]bool{}
	for d.NextBlock(2) {
		opt := d.Val()
		if seen[opt] {
			return nil, d.Errf("backend_auth oauth: %s given twice", opt)
		}
		seen[opt] = true
		var err error
		switch opt {
		case "grant":
			c.Grant, err = cfargs.One(d)
		case "authorization_server":
			c.AuthorizationServer, err = cfargs.One(d)
		case "token_endpoint":
			c.TokenEndpoint, err = cfargs.One(d)
		case "registration":
			c.Registration, err = cfargs.One(d)
		case "client_id":
			c.ClientID, err = cfargs.One(d)
		case "client_secret":
			c.ClientSecret, err = cfargs.One(d)
		case "token_endpoint_auth_method":
			c.TokenEndpointAuthMethod, err = cfargs.One(d)
		case "private_key":
			args := d.RemainingArgs()
			if len(args) == 0 || len(args) > 2 {
				return nil, d.ArgErr()
			}
			c.PrivateKey = args[0]
			if len(args) == 2 {
				c.PrivateKeyID = args[1]
			}
		case "scopes":
			if c.Scopes = d.RemainingArgs(); len(c.Scopes) == 0 {
				return nil, d.ArgErr()
			}
		case "resource":
			c.Resource, err = cfargs.One(d)
		case "redirect_uri":
			c.RedirectURI, err = cfargs.One(d)
		case "audience":
			c.Audience, err = cfargs.One(d)
		case "profile":
			c.Profile, err = cfargs.One(d)
		default:
			return nil, d.Errf("unknown backend_auth oauth option %q", opt)
		}
		if err != nil {
			return nil, err
		}
	}
	return c, nil
}

func unmarshalHealth(d *caddyfile.Dispenser) (*HealthConfig, error) {
	hc := new(HealthConfig)
	if d.NextArg() {
		if d.Val() != "off" {
			return nil, d.Errf("health takes only 'off' as argument, not %q", d.Val())
		}
		hc.Disabled = true
		if d.NextArg() {
			return nil, d.ArgErr()
		}
	}
	for d.NextBlock(1) {
		opt := d.Val()
		if !d.NextArg() {
			return nil, d.ArgErr()
		}
		val := d.Val()
		if d.NextArg() {
			return nil, d.ArgErr()
		}
		switch opt {
		case "interval":
			if val == "off" || val == "0" {
				hc.Disabled = true
				continue
			}
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return nil, d.Errf("bad health interval %q (a positive duration, or off)", val)
			}
			hc.Interval = caddy.Duration(dur)
		case "timeout":
			dur, err := caddy.ParseDuration(val)
			if err != nil || dur <= 0 {
				return nil, d.Errf("bad health timeout %q (a positive duration)", val)
			}
			hc.Timeout = caddy.Duration(dur)
		case "concurrency":
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 {
				return nil, d.Errf("bad health concurrency %q (a positive integer)", val)
			}
			hc.Concurrency = n
		case "jitter":
			var (
				j   float64
				err error
			)
			if pct, ok := strings.CutSuffix(val, "%"); ok {
				j, err = strconv.ParseFloat(pct, 64)
				j /= 100
			} else {
				j, err = strconv.ParseFloat(val, 64)
			}
			if err != nil || j < 0 || j > 1 {
				return nil, d.Errf("bad health jitter %q (a fraction 0..1 or a percentage)", val)
			}
			hc.Jitter = &j
		case "watch_limit":
			if val == "off" || val == "0" {
				hc.WatchLimit = -1
				continue
			}
			n, err := strconv.Atoi(val)
			if err != nil || n < 1 || n > maxWatchLimit {
				return nil, d.Errf("bad health watch_limit %q (1..%d, or off)", val, maxWatchLimit)
			}
			hc.WatchLimit = n
		default:
			return nil, d.Errf("unknown health option %q", opt)
		}
	}
	return hc, nil
}

// unmarshalUpstreamRules parses
//
//	runtime_upstreams {
//		schemes <http|https|builtin...>
//		allow   <cidr|address|host...>
//		deny    <cidr|address|host...>
//		resolve_timeout <duration>
//	}
func unmarshalUpstreamRules(d *caddyfile.Dispenser) (*upstream.Rules, error) {
	if d.NextArg() {
		return nil, d.ArgErr()
	}
	u := new(upstream.Rules)
	for n := d.Nesting(); d.NextBlock(n); {
		opt := d.Val()
		if opt == "resolve_timeout" {
			dur, err := cfargs.Duration(d)
			if err != nil {
				return nil, err
			}
			u.ResolveTimeout = dur
			continue
		}
		args := d.RemainingArgs()
		if len(args) == 0 {
			return nil, d.ArgErr()
		}
		switch opt {
		case "schemes":
			u.Schemes = append(u.Schemes, args...)
		case "allow":
			u.Allow = append(u.Allow, args...)
		case "deny":
			u.Deny = append(u.Deny, args...)
		default:
			return nil, d.Errf("unknown runtime_upstreams option %q (schemes, allow, deny, resolve_timeout)", opt)
		}
	}
	return u, nil
}
