package ideconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"strings"
)

// MergeJSON merges a generated JSON configuration into the content of a client's
// existing file, so that servers configured by hand stay: every top-level object of
// generated (the client's server map: "servers", "mcpServers") gets the generated
// entries, replacing those of the same name and keeping the others; a top-level array
// of objects with an "id" (VS Code's "inputs") is merged by id; every other key of
// existing is kept as it is. existing must be one JSON object (empty: a new file); a
// file with comments or trailing commas (JSONC) is refused, naming the problem, rather
// than rewritten without them. The result is indented with two spaces, keys sorted.
func MergeJSON(existing, generated []byte) ([]byte, error) {
	gen, err := decodeObject(generated)
	if err != nil {
		return nil, fmt.Errorf("the generated configuration: %v", err)
	}
	out := map[string]any{}
	if len(bytes.TrimSpace(existing)) > 0 {
		if out, err = decodeObject(existing); err != nil {
			return nil, fmt.Errorf("the existing file is not plain JSON (%v); merge by hand, or move it aside", err)
		}
	}
	for key, v := range gen {
		switch g := v.(type) {
		case map[string]any:
			cur, ok := out[key].(map[string]any)
			if !ok {
				if _, present := out[key]; present {
					return nil, fmt.Errorf("the existing file's %q is not an object", key)
				}
				cur = map[string]any{}
			}
			for name, entry := range g {
				cur[name] = entry
			}
			out[key] = cur
		case []any:
			cur, ok := out[key].([]any)
			if _, present := out[key]; present && !ok {
				return nil, fmt.Errorf("the existing file's %q is not an array", key)
			}
			out[key] = mergeByID(cur, g)
		default:
			out[key] = v
		}
	}
	b, err := json.MarshalIndent(out, "", "  ")
	if err != nil {
		return nil, err
	}
	return append(b, '\n'), nil
}

func decodeObject(b []byte) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(b))
	d.UseNumber() // numbers stay as written
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, err
	}
	if d.More() {
		return nil, errors.New("more than one JSON value")
	}
	if m == nil {
		return nil, errors.New("not a JSON object")
	}
	return m, nil
}

// mergeByID appends gen's objects to cur, replacing those with the same "id".
func mergeByID(cur, gen []any) []any {
	idOf := func(v any) (string, bool) {
		m, ok := v.(map[string]any)
		if !ok {
			return "", false
		}
		id, ok := m["id"].(string)
		return id, ok
	}
	out := append([]any(nil), cur...)
	for _, g := range gen {
		id, ok := idOf(g)
		replaced := false
		for i, c := range out {
			if cid, cok := idOf(c); ok && cok && cid == id {
				out[i], replaced = g, true
				break
			}
		}
		if !replaced {
			out = append(out, g)
		}
	}
	return out
}

var tomlHeader = regexp.MustCompile(`^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$`)

// MergeTOML merges a generated Codex configuration (one [mcp_servers.<name>] table
// per server) into the content of an existing config.toml: the tables of those
// servers (and their sub-tables) are replaced, everything else is kept byte for byte,
// and the generated tables are appended.
func MergeTOML(existing, generated string) (string, error) {
	names := map[string]bool{}
	for _, line := range strings.Split(generated, "\n") {
		if m := tomlHeader.FindStringSubmatch(line); m != nil {
			names[normalizeTOMLKey(m[1])] = true
		}
	}
	if len(names) == 0 {
		return "", errors.New("the generated configuration has no table")
	}
	var kept []string
	dropping := false
	for _, line := range strings.Split(existing, "\n") {
		if m := tomlHeader.FindStringSubmatch(line); m != nil {
			key := normalizeTOMLKey(m[1])
			dropping = false
			for n := range names {
				if key == n || strings.HasPrefix(key, n+".") {
					dropping = true
				}
			}
		}
		if !dropping {
			kept = append(kept, line)
		}
	}
	out := strings.TrimRight(strings.Join(kept, "\n"), "\n")
	if out != "" {
		out += "\n\n"
	}
	return out + strings.TrimLeft(generated, "\n"), nil
}

// normalizeTOMLKey writes a dotted key with every part quoted, so that
// mcp_servers.github and "mcp_servers"."github" compare equal.
func normalizeTOMLKey(k string) string {
	var parts []string
	for len(k) > 0 {
		k = strings.TrimSpace(k)
		var part string
		switch {
		case strings.HasPrefix(k, `"`):
			end := strings.Index(k[1:], `"`)
			if end < 0 {
				return k
			}
			part, k = k[1:end+1], k[end+2:]
		case strings.HasPrefix(k, `'`):
			end := strings.Index(k[1:], `'`)
			if end < 0 {
				return k
			}
			part, k = k[1:end+1], k[end+2:]
		default:
			end := strings.IndexByte(k, '.')
			if end < 0 {
				end = len(k)
			}
			part, k = strings.TrimSpace(k[:end]), k[end:]
		}
		parts = append(parts, `"`+part+`"`)
		k = strings.TrimSpace(k)
		k = strings.TrimPrefix(k, ".")
	}
	return strings.Join(parts, ".")
}
