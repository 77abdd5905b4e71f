package oauthserver

import (
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/caddyserver/caddy/v2"
	"github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"

	"github.com/caddymcp/caddymcp/oauthserver/federation"
)

func TestUnmarshalCaddyfile(t *testing.T) {
	d := caddyfile.NewTestDispenser(`mcp_oauth_server https://mcp.example.com/oauth {
		resource https://mcp.example.com
		client cursor {
			redirect_uri http://127.0.0.1/callback https://cursor.example/cb
			name "Cursor"
			public
		}
		client ci {
			secret {env.CI_SECRET}
			groups robots
		}
		user alice $2a$10$abcdefghijklmnopqrstuu {
			groups eng ops
		}
		user bob $2a$10$abcdefghijklmnopqrstuu
		access_token_lifetime 15m
		refresh_token_lifetime 7d
		key_rotation 14d
		signing_key_encryption_key {env.MCP_OAUTH_KEY}
		registration_rate 5
		cimd_allow 10.0.0.0/8
		identity_provider entra {
			issuer https://login.microsoftonline.com/t1/v2.0
			client_id 0000-1111
			client_secret {env.ENTRA_SECRET}
			display_name "Microsoft Entra ID"
			scopes openid profile email
			username_claim email
			group 7d3c1a52 readers
			group 9b8a7c6d admins
			allowed_groups readers admins
			reauthenticate_after 8h
		}
		identity_provider cognito {
			issuer https://cognito-idp.eu-west-1.amazonaws.com/pool
			client_id abc
			groups_claim cognito:groups
		}
		password_sign_in off
	}`)
	var s Server
	if err := s.UnmarshalCaddyfile(d); err != nil {
		t.Fatal(err)
	}
	if s.Issuer != "https://mcp.example.com/oauth" || s.Resource != "https://mcp.example.com" || len(s.Clients) != 2 || len(s.Users) != 2 ||
		s.RegistrationRate != 5 || s.SigningKeyEncryptionKey != "{env.MCP_OAUTH_KEY}" || !reflect.DeepEqual(s.CIMDAllow, []string{"10.0.0.0/8"}) {
		t.Fatalf("%+v", &s)
	}
	if c := s.Clients[0]; c.Name != "Cursor" || len(c.RedirectURIs) != 2 || c.Secret != "" {
		t.Errorf("client %+v", c)
	}
	if u := s.Users[0]; u.Name != "alice" || !reflect.DeepEqual(u.Groups, []string{"eng", "ops"}) {
		t.Errorf("user %+v", u)
	}
	if len(s.IdentityProviders) != 2 || !s.DisablePasswordSignIn {
		t.Fatalf("identity providers %+v, password sign-in off %v", s.IdentityProviders, s.DisablePasswordSignIn)
	}
	if p := s.IdentityProviders[0]; p.Name != "entra" || p.ClientSecret != "{env.ENTRA_SECRET}" || p.DisplayName != "Microsoft Entra ID" ||
		p.UsernameClaim != "email" || !reflect.DeepEqual(p.GroupMap, map[string]string{"7d3c1a52": "readers", "9b8a7c6d": "admins"}) ||
		p.ReauthenticateAfter != caddy.Duration(8*time.Hour) || !reflect.DeepEqual(p.AllowedGroups, []string{"readers", "admins"}) {
		t.Errorf("entra %+v", p)
	}
	if p := s.IdentityProviders[1]; p.GroupsClaim != "cognito:groups" {
		t.Errorf("cognito %+v", p)
	}
}

func TestUnmarshalCaddyfileErrors(t *testing.T) {
	block := func(body string) string { return "mcp_oauth_server https://a {\n" + body + "\n}" }
	for input, want := range map[string]string{
		`mcp_oauth_server`:                                          "issuer URL",
		`mcp_oauth_server https://a https://b`:                      "wrong argument count",
		block("bogus"):                                              "unknown mcp_oauth_server option",
		block("resource x y"):                                       "wrong argument count",
		block("key_rotation 1"):                                     "bad duration",
		block("registration on"):                                    "only off",
		block("registration_rate x"):                                "bad registration_rate",
		block("cimd_allow"):                                         "wrong argument count",
		block("user alice"):                                         "name and a bcrypt hash",
		block("user a h\nuser a h"):                                 "given twice",
		block("client c\nclient c"):                                 "given twice",
		block("client c {\nsecret s\npublic\n}"):                    "public with a secret",
		block("client c {\nbogus\n}"):                               "unknown client option",
		block("client c {\nname a\nname b\n}"):                      "given twice",
		block("access_token_lifetime 1h\naccess_token_lifetime 2h"): "given twice",
		block("registration off\nregistration_rate 3"):              "registration off with",
		block("identity_provider c {\nclient_id x\n}"):              "needs issuer and client_id",
		block("identity_provider c {\nissuer https://i\nclient_id x\nbogus y\n}"):                                                 "unknown identity_provider option",
		block("identity_provider c {\nissuer https://i\nissuer https://j\n}"):                                                     "given twice",
		block("identity_provider c {\ngroup a b\ngroup a c\n}"):                                                                   "group \"a\" given twice",
		block("identity_provider c {\ngroup a\n}"):                                                                                "the provider's value and the group name",
		block("identity_provider c {\nissuer https://i\nclient_id x\n}\nidentity_provider c {\nissuer https://i\nclient_id x\n}"): "given twice",
		block("password_sign_in on"):                                                                                              "only off",
	} {
		var s Server
		err := s.UnmarshalCaddyfile(caddyfile.NewTestDispenser(input))
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%q: error %v, want %q", input, err, want)
		}
	}
}

func TestProvisionRefusesBadConfig(t *testing.T) {
	for name, configure := range map[string]func(*Server){
		"http issuer":           func(s *Server) { s.Issuer = "http://mcp.example.com" },
		"issuer with query":     func(s *Server) { s.Issuer += "?x=1" },
		"issuer trailing /":     func(s *Server) { s.Issuer += "/" },
		"bad key":               func(s *Server) { s.SigningKeyEncryptionKey = "short" },
		"plain user hash":       func(s *Server) { s.Users[0].PasswordHash = "secret" },
		"duplicate client":      func(s *Server) { s.Clients = append(s.Clients, s.Clients[0]) },
		"URL client id":         func(s *Server) { s.Clients[0].ID = "https://x.example/c" },
		"bad redirect":          func(s *Server) { s.Clients[0].RedirectURIs = []string{"http://evil.example/cb"} },
		"groups without secret": func(s *Server) { s.Clients[0].Groups = []string{"g"} },
		"bad CIDR":              func(s *Server) { s.CIMDAllow = []string{"10.0.0.0"} },
		"password sign-in off without a provider": func(s *Server) { s.DisablePasswordSignIn = true },
		"password sign-in off with first_user": func(s *Server) {
			s.DisablePasswordSignIn = true
			s.FirstUser = &FirstUserConfig{}
			s.IdentityProviders = []federation.Provider{{Issuer: "https://a.example", ClientID: "c"}}
		},
		"provider without client_id": func(s *Server) { s.IdentityProviders = []federation.Provider{{Issuer: "https://idp.example"}} },
		"provider over http": func(s *Server) {
			s.IdentityProviders = []federation.Provider{{Issuer: "http://idp.example", ClientID: "c"}}
		},
		"provider twice": func(s *Server) {
			s.IdentityProviders = []federation.Provider{{Issuer: "https://a.example", ClientID: "c"}, {Issuer: "https://b.example", ClientID: "c"}}
		},
	} {
		t.Run(name, func(t *testing.T) {
			s := &Server{Issuer: "https://mcp.example.com/oauth",
				Users:   []UserConfig{{Name: "alice", PasswordHash: testHashes()}},
				Clients: []ClientConfig{{ID: "c"}}}
			configure(s)
			if err := s.provision(t.Context(), nopLogger(), nil, nil, nil); err == nil {
				t.Fatal("accepted")
			}
		})
	}
}
