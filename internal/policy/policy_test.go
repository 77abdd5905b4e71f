package policy

import (
	"os"
	"strings"
	"testing"
)

func loadTestPolicy(t *testing.T) *Policy {
	t.Helper()
	data, err := os.ReadFile("../../testdata/policy/scopes.yml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ParseYAML(data)
	if err != nil {
		t.Fatal(err)
	}
	p, warnings, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "servers/does-not-exist") {
		t.Fatalf("warnings: %v", warnings)
	}
	return p
}

const entraGroup = "0f5c2e9a-1111-4c3b-9d2e-3a7b6c5d4e21"

func TestAllowMatrix(t *testing.T) {
	p := loadTestPolicy(t)
	tests := []struct {
		groups               []string
		server, method, name string
		want                 bool
		scope                string
	}{
		{[]string{"platform-admins"}, "github", "tools/call", "delete_repo", true, "servers/all"},
		{[]string{"platform-admins"}, "anything", "tools/list", "", true, "servers/all"},
		{[]string{"platform-admins"}, "anything", "prompts/get", "p", false, ""},
		{[]string{entraGroup}, "github", "tools/call", "search_repositories", true, "servers/github-read"},
		{[]string{entraGroup}, "/github/", "tools/call", "get_file_contents", true, "servers/github-read"},
		{[]string{entraGroup}, "github", "tools/call", "delete_repo", false, ""},
		{[]string{entraGroup}, "github", "tools/call", "", false, ""},
		{[]string{entraGroup}, "gitlab", "tools/list", "", false, ""},
		{[]string{entraGroup}, "github", "resources/read", "file:///x", false, ""},
		{[]string{"readers"}, "everything", "tools/call", "echo", true, "servers/readonly"},
		{[]string{"readers"}, "everything", "tools/call", "add", false, ""},
		{[]string{"readers"}, "everything", "prompts/get", "simple-prompt", true, "servers/readonly"},
		{[]string{"readers"}, "everything", "prompts/get", "complex-prompt", false, ""},
		{[]string{"readers"}, "everything", "resources/read", "test://static/resource/1", true, "servers/readonly"},
		{[]string{"readers"}, "everything", "server/discover", "", true, "servers/readonly"},
		{[]string{"readers"}, "everything", "subscriptions/listen", "", true, "servers/readonly"},
		{[]string{"readers"}, "everything", "completion/complete", "", false, ""},
		{[]string{"readers"}, "other", "ping", "", false, ""},
		{[]string{"typo-group"}, "everything", "ping", "", false, ""},
		{[]string{"nobody"}, "everything", "ping", "", false, ""},
		{nil, "everything", "ping", "", false, ""},
		{[]string{"readers", entraGroup}, "github", "tools/call", "search_repositories", true, "servers/github-read"},
	}
	for _, tc := range tests {
		g := p.Resolve(tc.groups)
		ok, scope := g.Allow(tc.server, tc.method, tc.name)
		if ok != tc.want || scope != tc.scope {
			t.Errorf("groups %v: Allow(%q, %q, %q) = %v %q; want %v %q", tc.groups, tc.server, tc.method, tc.name, ok, scope, tc.want, tc.scope)
		}
	}
}

func TestUIPermissions(t *testing.T) {
	p := loadTestPolicy(t)
	admin, gh, reader := p.Resolve([]string{"platform-admins"}), p.Resolve([]string{entraGroup}), p.Resolve([]string{"readers"})
	if !admin.AllowUI(RegisterService, "") || !admin.AllowUI(ToggleService, "x") {
		t.Error("admins hold every registry permission on all servers")
	}
	if !gh.AllowUI(ListService, "github") || !gh.AllowUI(ListService, "registry") || gh.AllowUI(ListService, "other") || gh.AllowUI(ListService, "") {
		t.Error("github users may list github and registry only")
	}
	if gh.AllowUI(RegisterService, "github") || reader.AllowUI(ListService, "everything") {
		t.Error("permissions not granted must be denied")
	}
	if got := strings.Join(gh.ScopeNames(), ","); got != "servers/github-read,github-users" {
		t.Errorf("scope names: %s", got)
	}
}

func TestParseErrors(t *testing.T) {
	for _, tc := range []struct{ yaml, want string }{
		{"- a\n- b\n", "top level must be a mapping"},
		{"group_mappings: [a]\n", "group_mappings: must be a mapping"},
		{"group_mappings:\n  g: {a: b}\n", "must be a string or a list"},
		{"s:\n  server: x\n", `scope "s": must be a list`},
		{"s:\n- methods: [ping]\n", "server is required"},
		{"s:\n- server: x\n  method: [ping]\n", `unknown key "method"`},
		{"UI-Scopes:\n  a:\n    delete_everything: [all]\n", ""},
		{"s: [\n", "not valid YAML"},
	} {
		cfg, err := ParseYAML([]byte(tc.yaml))
		if err == nil {
			_, _, err = Compile(cfg)
		}
		if err == nil || (tc.want != "" && !strings.Contains(err.Error(), tc.want)) {
			t.Errorf("%q: want error %q, got %v", tc.yaml, tc.want, err)
		}
	}
	if _, _, err := Compile(&Config{Scopes: map[string][]RuleConfig{"s": {{Server: "*"}}}}); err == nil {
		t.Error("a rule without methods must be rejected")
	}
	if _, err := ParseYAML(make([]byte, MaxFileSize+1)); err == nil {
		t.Error("an oversize file must be rejected")
	}
}

func BenchmarkAllow(b *testing.B) {
	data, _ := os.ReadFile("../../testdata/policy/scopes.yml")
	cfg, _ := ParseYAML(data)
	p, _, _ := Compile(cfg)
	g := p.Resolve([]string{"readers", entraGroup})
	b.ReportAllocs()
	for b.Loop() {
		if ok, _ := g.Allow("github", "tools/call", "get_file_contents"); !ok {
			b.Fatal("denied")
		}
	}
}
