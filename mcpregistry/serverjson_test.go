package mcpregistry

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
	"testing"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/v01"
)

func TestImportServerJSON(t *testing.T) {
	loadConfig(t, map[string]any{
		"storage":           map[string]any{"path": filepath.Join(t.TempDir(), "registry.db")},
		"runtime_upstreams": loopbackUpstreams,
		"health":            map[string]any{"disabled": true},
		"servers":           []map[string]any{{"name": "taken", "upstream": "http://127.0.0.1:3000/mcp"}},
	})
	t.Cleanup(func() { caddy.Stop() })
	app := runningApp(t)
	ctx := context.Background()

	good := `{"$schema": "` + v01.SchemaURL + `", "name": "io.github.Foo/GitHub_Server", "description": "GitHub tools", "version": "1.2.0",
		"remotes": [
			{"type": "sse", "url": "http://127.0.0.1:5000/sse"},
			{"type": "streamable-http", "url": "https://{tenant}.example.com/mcp"},
			{"type": "streamable-http", "url": "http://127.0.0.1:5001/mcp", "headers": [{"name": "X-Api-Key", "isRequired": true, "isSecret": true}]}
		]}`
	res, err := app.ImportServerJSON(ctx, []byte(good), "")
	if err != nil || res.Created != 1 || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "X-Api-Key") {
		t.Fatalf("import: %+v %v", res, err)
	}
	s := app.Lookup("github_server")
	if s == nil || s.Upstream != "http://127.0.0.1:5001/mcp" || s.Transport != model.TransportStreamableHTTP || !s.Enabled ||
		s.Source != model.SourceAPI || s.Origin != "server.json#io.github.Foo/GitHub_Server" || s.Description != "GitHub tools" {
		t.Fatalf("imported record: %+v", s)
	}

	// The same again: unchanged. Changed and disabled by the operator meanwhile: the
	// description follows the document, enabled stays as the operator set it.
	if res, err := app.ImportServerJSON(ctx, []byte(good), ""); err != nil || res.Unchanged != 1 || res.Created+res.Updated != 0 {
		t.Fatalf("re-import: %+v %v", res, err)
	}
	if _, err := app.SetEnabled(ctx, "github_server", false, model.AnyRevision); err != nil {
		t.Fatal(err)
	}
	changed := strings.Replace(good, "GitHub tools", "GitHub tools, v2", 1)
	if res, err := app.ImportServerJSON(ctx, []byte(changed), ""); err != nil || res.Updated != 1 {
		t.Fatalf("changed import: %+v %v", res, err)
	}
	if s := app.Server("github_server"); s.Description != "GitHub tools, v2" || s.Enabled {
		t.Errorf("after the changed import: %+v", s)
	}

	// An array with a prefix; a name held by a config record is skipped with the reason.
	arr := `[{"name": "com.a/one", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "http://127.0.0.1:5002/sse"}]},
		{"name": "com.a/taken", "description": "d", "version": "1", "remotes": [{"type": "streamable-http", "url": "http://127.0.0.1:5003/mcp"}]}]`
	if res, err := app.ImportServerJSON(ctx, []byte(arr), "imp-"); err != nil || res.Created != 2 {
		t.Fatalf("array: %+v %v", res, err)
	}
	if s := app.Lookup("imp-one"); s == nil || s.Transport != model.TransportSSE {
		t.Errorf("imp-one: %+v", s)
	}
	res, err = app.ImportServerJSON(ctx, []byte(arr), "")
	if err != nil || res.Created != 1 || res.Skipped != 1 || !strings.Contains(res.Skips[0].Reason, "not imported") {
		t.Fatalf("collision: %+v %v", res, err)
	}
	if s := app.Server("taken"); s.Source != model.SourceConfig || s.Upstream != "http://127.0.0.1:3000/mcp" {
		t.Errorf("the config record was changed: %+v", s)
	}

	// Unusable documents fail the whole import, naming the server and the field; nothing
	// of the request is written.
	for body, want := range map[string][]string{
		`[{"name": "com.b/fine", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "http://127.0.0.1:5004/sse"}]},
		  {"name": "com.b/local-only", "description": "d", "version": "1", "packages": [{"registryType": "npm", "identifier": "x", "transport": {"type": "stdio"}}]}]`: {`"com.b/local-only"`, "packages"},
		`{"name": "noslash", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "http://127.0.0.1:5004/sse"}]}`:         {"noslash", "name"},
		`{"name": "com.b/---", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "http://127.0.0.1:5004/sse"}]}`:       {"com.b/---", "name"},
		`{"name": "com.b/tpl", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "{base}/sse"}]}`:                      {"com.b/tpl", "remotes", "template"},
		`{"name": "com.b/ws", "description": "d", "version": "1", "remotes": [{"type": "websocket", "url": "ws://x"}]}`:                     {"com.b/ws", "remotes[0].type"},
		`{"name": "com.b/none", "description": "d", "version": "1"}`:                                                                        {"com.b/none", "remotes"},
		`{"name": "com.b/creds", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "http://u:p@127.0.0.1:5004/sse"}]}`: {"com.b/creds", "remotes[].url", "credentials"},
		`{"name": "com.b/x"} trailing`: {"body"},
		`"just a string"`:              {"body"},
		``:                             {"body"},
		`[{"name": "com.b/twice", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "http://127.0.0.1:5004/sse"}]}, {"name": "com.c/twice", "description": "d", "version": "1", "remotes": [{"type": "sse", "url": "http://127.0.0.1:5004/sse"}]}]`: {"twice"},
	} {
		res, err := app.ImportServerJSON(ctx, []byte(body), "")
		if err == nil {
			t.Errorf("%s: want an error, got %+v", body, res)
			continue
		}
		for _, w := range want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: error %q does not mention %q", body, err, w)
			}
		}
	}
	if app.Server("fine") != nil {
		t.Error("a failed import wrote a record")
	}
	var fe *model.FieldError
	if _, err := app.ImportServerJSON(ctx, []byte(good), "Bad"); !errors.As(err, &fe) || fe.Field != "name_prefix" {
		t.Errorf("bad prefix: %v", err)
	}
}
