// Package policy decides what a caller may do from the groups in their token:
// groups map to scopes, scopes hold rules of {server, methods, tools}, the first rule that
// grants wins, and anything no rule grants is denied. It reads the replaced system's
// scopes.yml layout unchanged. Plain values only: no Caddy, no I/O.
package policy

import (
	"slices"
	"strings"
)

// Rule grants methods (and, for tools/call, prompts/get and resources/read, names) on one
// server or on every server.
type Rule struct {
	// Server is a server name, or "*" for all. Compared without leading/trailing slashes.
	Server string
	// Methods the rule grants; "*" or "all" grants every method.
	Methods []string
	// Tools callable with tools/call; "*" grants all. Empty: no tool may be called.
	Tools []string
	// Prompts for prompts/get and Resources (URIs) for resources/read; nil means any,
	// once the method itself is granted (scopes.yml has no such keys).
	Prompts   []string
	Resources []string
}

// UIPermission names a registry permission of the policy's UI scopes.
type UIPermission string

const (
	ListService        UIPermission = "list_service"
	RegisterService    UIPermission = "register_service"
	ToggleService      UIPermission = "toggle_service"
	ModifyService      UIPermission = "modify_service"
	HealthCheckService UIPermission = "health_check_service"
)

// Policy is a compiled policy. It is immutable and safe for concurrent use.
type Policy struct {
	groups map[string][]*scope // group → scopes it grants, in file order
	scopes map[string]*scope
}

type scope struct {
	name  string
	rules []compiledRule
	ui    map[UIPermission]set
}

type compiledRule struct {
	server                    string // "" means every server
	methods                   set
	tools, prompts, resources set
	promptsAny, resourcesAny  bool
}

// set is a small string set; all means it holds everything.
type set struct {
	all   bool
	items []string
}

func newSet(items []string) set {
	s := set{}
	for _, it := range items {
		if it == "*" || it == "all" {
			return set{all: true}
		}
		s.items = append(s.items, it)
	}
	return s
}

func (s set) has(v string) bool { return s.all || slices.Contains(s.items, v) }

func normServer(name string) string {
	name = strings.Trim(name, "/")
	if name == "*" || name == "all" {
		return ""
	}
	return name
}

// Scopes returns the names of the scopes the groups grant, deduplicated, in a stable
// order: used for the scope="…" of challenges and for audit.
func (p *Policy) Scopes(groups []string) []string {
	var out []string
	for _, g := range groups {
		for _, sc := range p.groups[g] {
			if !slices.Contains(out, sc.name) {
				out = append(out, sc.name)
			}
		}
	}
	return out
}

// Grant is the resolved permissions of one caller: the scopes their groups map to.
// Resolve it once per token and reuse it for every request the token makes.
type Grant struct {
	scopes []*scope
}

// Resolve maps groups to the caller's Grant.
func (p *Policy) Resolve(groups []string) Grant {
	var g Grant
	for _, name := range groups {
		for _, sc := range p.groups[name] {
			if !slices.Contains(g.scopes, sc) {
				g.scopes = append(g.scopes, sc)
			}
		}
	}
	return g
}

// ScopeNames lists the grant's scopes.
func (g Grant) ScopeNames() []string {
	out := make([]string, len(g.scopes))
	for i, sc := range g.scopes {
		out[i] = sc.name
	}
	return out
}

// Allow reports whether the grant permits method on server; name is the tool (tools/call),
// prompt (prompts/get) or resource URI (resources/read, resources/subscribe,
// resources/unsubscribe) and is ignored for other methods.
// It returns the scope that granted it.
func (g Grant) Allow(server, method, name string) (bool, string) {
	server = strings.Trim(server, "/")
	for _, sc := range g.scopes {
		for i := range sc.rules {
			if sc.rules[i].allows(server, method, name) {
				return true, sc.name
			}
		}
	}
	return false, ""
}

func (r *compiledRule) allows(server, method, name string) bool {
	if r.server != "" && r.server != server {
		return false
	}
	if !r.methods.has(method) {
		return false
	}
	switch method {
	case "tools/call":
		return r.tools.has(name)
	case "prompts/get":
		return r.promptsAny || r.prompts.has(name)
	case "resources/read", "resources/subscribe", "resources/unsubscribe":
		return r.resourcesAny || r.resources.has(name)
	}
	return true
}

// AllowTool reports whether the grant may call tool on server: what tools/list filtering keeps.
func (g Grant) AllowTool(server, tool string) bool {
	ok, _ := g.Allow(server, "tools/call", tool)
	return ok
}

// AllowPrompt and AllowResource are the prompts/list and resources/list counterparts.
func (g Grant) AllowPrompt(server, prompt string) bool {
	ok, _ := g.Allow(server, "prompts/get", prompt)
	return ok
}

func (g Grant) AllowResource(server, uri string) bool {
	ok, _ := g.Allow(server, "resources/read", uri)
	return ok
}

// AllowUI reports whether the grant holds a registry permission for server ("" asks
// whether it holds it for all servers).
func (g Grant) AllowUI(perm UIPermission, server string) bool {
	server = strings.Trim(server, "/")
	for _, sc := range g.scopes {
		s, ok := sc.ui[perm]
		if !ok {
			continue
		}
		if s.all || (server != "" && s.has(server)) {
			return true
		}
	}
	return false
}

// Empty reports whether the grant holds no scope at all.
func (g Grant) Empty() bool { return len(g.scopes) == 0 }
