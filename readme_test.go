package caddymcp

import (
	"os"
	"strings"
	"testing"
)

// The README shows the quickstart Caddyfile verbatim: it must not drift from the file
// the first command runs.
func TestReadmeQuickstartIsTheExample(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	example, err := os.ReadFile("caddyfile-examples/quickstart.Caddyfile")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(readme), "## Quickstart")
	if !ok {
		t.Fatal("README has no Quickstart section")
	}
	_, block, ok := strings.Cut(section, "```caddyfile\n")
	if !ok {
		t.Fatal("README's Quickstart section has no caddyfile block")
	}
	block, _, _ = strings.Cut(block, "```\n")
	if block != string(example) {
		t.Errorf("README's quickstart block differs from caddyfile-examples/quickstart.Caddyfile:\n%s", block)
	}
}
