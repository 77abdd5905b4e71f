package model

import (
	"errors"
	"strings"
	"testing"
)

func TestNormalize(t *testing.T) {
	ok := func() Server {
		return Server{Name: "github", Upstream: "https://api.example.com/mcp"}
	}
	s := ok()
	if err := s.Normalize(); err != nil {
		t.Fatal(err)
	}
	if s.Path != "github" || s.Transport != TransportStreamableHTTP || s.BackendAuth.Scheme != BackendAuthNone || s.Source != SourceAPI {
		t.Fatalf("defaults not filled: %+v", s)
	}

	tests := []struct {
		field  string
		mutate func(*Server)
	}{
		{"name", func(s *Server) { s.Name = "" }},
		{"name", func(s *Server) { s.Name = "Has Space" }},
		{"name", func(s *Server) { s.Name = "-lead" }},
		{"name", func(s *Server) { s.Name = strings.Repeat("a", 64) }},
		{"path", func(s *Server) { s.Path = "a/b" }},
		{"transport", func(s *Server) { s.Transport = "websocket" }},
		{"upstream", func(s *Server) { s.Upstream = "" }},
		{"upstream", func(s *Server) { s.Upstream = "ftp://x/mcp" }},
		{"upstream", func(s *Server) { s.Upstream = "http:///mcp" }},
		{"upstream", func(s *Server) { s.Upstream = "http://user:pw@host/mcp" }},
		{"upstream", func(s *Server) { s.Upstream = "http://host/mcp#frag" }},
		{"upstream", func(s *Server) { s.Upstream = "builtin:" }},
		{"upstream", func(s *Server) { s.Upstream = "http://[::1/mcp" }},
		{"transport", func(s *Server) { s.Upstream = "builtin:registry"; s.Transport = TransportSSE }},
		{"backend_auth.header", func(s *Server) { s.BackendAuth.Scheme = BackendAuthAPIKey }},
		{"backend_auth.scheme", func(s *Server) { s.BackendAuth.Scheme = "basic" }},
		{"description", func(s *Server) { s.Description = strings.Repeat("x", 4097) }},
		{"tags", func(s *Server) { s.Tags = []string{""} }},
	}
	for _, tc := range tests {
		s := ok()
		tc.mutate(&s)
		err := s.Normalize()
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tc.field {
			t.Errorf("%+v: want a FieldError on %s, got %v", s, tc.field, err)
		}
	}
}

// A server written at runtime can never be made to receive clients' cookies and
// access_token; a config server may opt in.
func TestForwardClientCredentialsConfigOnly(t *testing.T) {
	s := &Server{Name: "a", Upstream: "http://h/mcp", ForwardClientCredentials: true}
	var fe *FieldError
	if err := s.Normalize(); !errors.As(err, &fe) || fe.Field != "forward_client_credentials" {
		t.Errorf("runtime server: %v", err)
	}
	s = &Server{Name: "a", Upstream: "http://h/mcp", ForwardClientCredentials: true, Source: SourceConfig}
	if err := s.Normalize(); err != nil {
		t.Errorf("config server: %v", err)
	}
}
