package caddymcp

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2/caddyconfig"
	_ "github.com/caddyserver/caddy/v2/caddyconfig/caddyfile"
	_ "github.com/caddyserver/caddy/v2/modules/standard"
)

var update = flag.Bool("update", false, "rewrite the adapt golden files")

// TestCaddyfileAdapt adapts every testdata/caddyfile_adapt/*.caddyfiletest (Caddy's own
// format: a Caddyfile, a line of dashes, the expected JSON) and every runnable example,
// comparing with its golden JSON.
func TestCaddyfileAdapt(t *testing.T) {
	for _, env := range []string{"EVERYTHING_URL", "MCP_REGISTRY_DB", "OIDC_ISSUER", "MCP_RESOURCE", "MCP_SCOPES_FILE"} {
		t.Setenv(env, "")
		os.Unsetenv(env)
	}
	cases, _ := filepath.Glob("testdata/caddyfile_adapt/*.caddyfiletest")
	examples, _ := filepath.Glob("caddyfile-examples/*.Caddyfile")
	if len(examples) == 0 || len(cases) == 0 {
		t.Fatal("no adapt cases found")
	}
	for _, path := range cases {
		t.Run(filepath.Base(path), func(t *testing.T) {
			raw, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			input, want, found := strings.Cut(string(raw), "\n----------\n")
			if !found && !*update {
				t.Fatalf("%s: no line of ten dashes between the Caddyfile and its JSON", path)
			}
			got := adapt(t, []byte(input))
			if *update {
				os.WriteFile(path, []byte(input+"\n----------\n"+got), 0o644)
				return
			}
			if strings.TrimSpace(got) != strings.TrimSpace(want) {
				t.Errorf("adapted JSON differs\n--- got\n%s\n--- want\n%s", got, want)
			}
		})
	}
	for _, path := range examples {
		t.Run(filepath.Base(path), func(t *testing.T) {
			input, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			golden := filepath.Join("testdata", "caddyfile_adapt", "examples", strings.TrimSuffix(filepath.Base(path), ".Caddyfile")+".json")
			got := adapt(t, input)
			if *update {
				os.MkdirAll(filepath.Dir(golden), 0o755)
				os.WriteFile(golden, []byte(got), 0o644)
				return
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatalf("missing golden file (run go test -run TestCaddyfileAdapt -update .): %v", err)
			}
			if strings.TrimSpace(got) != strings.TrimSpace(string(want)) {
				t.Errorf("adapted JSON differs from %s\n--- got\n%s", golden, got)
			}
		})
	}
}

func adapt(t *testing.T, input []byte) string {
	t.Helper()
	adapter := caddyconfig.GetAdapter("caddyfile")
	out, warnings, err := adapter.Adapt(input, map[string]any{"filename": "Caddyfile"})
	if err != nil {
		t.Fatalf("adapting: %v", err)
	}
	for _, w := range warnings {
		t.Errorf("adapt warning: %s", w.String())
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, out, "", "\t"); err != nil {
		t.Fatal(err)
	}
	return buf.String() + "\n"
}
