package policy

import (
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Config is the policy as plain data: what a Caddyfile block, JSON config or a
// scopes.yml file says.
type Config struct {
	// GroupMappings maps an IdP group (name, or an Entra object-id GUID) to scope names.
	GroupMappings map[string][]string `json:"group_mappings,omitempty"`
	// UIScopes maps a scope name to registry permissions (list_service, register_service,
	// toggle_service, modify_service, health_check_service), each a list of server names or "all".
	UIScopes map[string]map[string][]string `json:"ui_scopes,omitempty"`
	// Scopes maps a scope name to the rules it grants on MCP servers.
	Scopes map[string][]RuleConfig `json:"scopes,omitempty"`
}

// RuleConfig is one rule as written.
type RuleConfig struct {
	Server    string   `json:"server" yaml:"server"`
	Methods   []string `json:"methods,omitempty" yaml:"methods"`
	Tools     []string `json:"tools,omitempty" yaml:"tools"`
	Prompts   []string `json:"prompts,omitempty" yaml:"prompts"`
	Resources []string `json:"resources,omitempty" yaml:"resources"`
}

// MaxFileSize bounds a policy file.
const MaxFileSize = 1 << 20

var uiPermissions = []UIPermission{ListService, RegisterService, ToggleService, ModifyService, HealthCheckService}

// ParseYAML reads the scopes.yml layout: "UI-Scopes", "group_mappings", and every other
// top-level key a server scope holding a list of rules. Scalars stand for one-element
// lists (tools: '*').
func ParseYAML(data []byte) (*Config, error) {
	if len(data) > MaxFileSize {
		return nil, fmt.Errorf("policy file is larger than %d bytes", MaxFileSize)
	}
	var root yaml.Node
	if err := yaml.Unmarshal(data, &root); err != nil {
		return nil, fmt.Errorf("policy file is not valid YAML: %v", err)
	}
	cfg := &Config{GroupMappings: map[string][]string{}, UIScopes: map[string]map[string][]string{}, Scopes: map[string][]RuleConfig{}}
	if len(root.Content) == 0 {
		return cfg, nil
	}
	top := root.Content[0]
	if top.Kind != yaml.MappingNode {
		return nil, fmt.Errorf("policy file: top level must be a mapping")
	}
	for i := 0; i+1 < len(top.Content); i += 2 {
		key, val := top.Content[i].Value, top.Content[i+1]
		var err error
		switch key {
		case "group_mappings":
			err = decodeStringLists(val, key, cfg.GroupMappings)
		case "UI-Scopes", "ui_scopes":
			if val.Kind != yaml.MappingNode {
				return nil, fmt.Errorf("%s: must be a mapping of scope names", key)
			}
			for j := 0; j+1 < len(val.Content); j += 2 {
				perms := map[string][]string{}
				name := val.Content[j].Value
				if err := decodeStringLists(val.Content[j+1], key+"."+name, perms); err != nil {
					return nil, err
				}
				cfg.UIScopes[name] = perms
			}
		default:
			var rules []RuleConfig
			rules, err = decodeRules(val, key)
			if _, dup := cfg.Scopes[key]; dup {
				return nil, fmt.Errorf("scope %q is defined twice", key)
			}
			cfg.Scopes[key] = rules
		}
		if err != nil {
			return nil, err
		}
	}
	return cfg, nil
}

func decodeStringLists(n *yaml.Node, where string, into map[string][]string) error {
	if n.Kind != yaml.MappingNode {
		return fmt.Errorf("%s: must be a mapping", where)
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		list, err := stringList(n.Content[i+1], where+"."+n.Content[i].Value)
		if err != nil {
			return err
		}
		into[n.Content[i].Value] = list
	}
	return nil
}

func stringList(n *yaml.Node, where string) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		if n.Tag == "!!null" {
			return nil, nil
		}
		return []string{n.Value}, nil
	case yaml.SequenceNode:
		out := make([]string, 0, len(n.Content))
		for _, c := range n.Content {
			if c.Kind != yaml.ScalarNode {
				return nil, fmt.Errorf("%s: list items must be strings", where)
			}
			out = append(out, c.Value)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: must be a string or a list of strings", where)
}

func decodeRules(n *yaml.Node, scope string) ([]RuleConfig, error) {
	if n.Kind != yaml.SequenceNode {
		return nil, fmt.Errorf("scope %q: must be a list of rules (server, methods, tools)", scope)
	}
	var rules []RuleConfig
	for idx, item := range n.Content {
		where := fmt.Sprintf("scope %q rule %d", scope, idx+1)
		if item.Kind != yaml.MappingNode {
			return nil, fmt.Errorf("%s: must be a mapping", where)
		}
		var r RuleConfig
		for i := 0; i+1 < len(item.Content); i += 2 {
			key, val := item.Content[i].Value, item.Content[i+1]
			var err error
			switch key {
			case "server":
				if val.Kind != yaml.ScalarNode {
					return nil, fmt.Errorf("%s: server must be a string", where)
				}
				r.Server = val.Value
			case "methods":
				r.Methods, err = stringList(val, where+".methods")
			case "tools":
				r.Tools, err = stringList(val, where+".tools")
			case "prompts":
				r.Prompts, err = stringList(val, where+".prompts")
			case "resources":
				r.Resources, err = stringList(val, where+".resources")
			default:
				return nil, fmt.Errorf("%s: unknown key %q (server, methods, tools, prompts, resources)", where, key)
			}
			if err != nil {
				return nil, err
			}
		}
		if r.Server == "" {
			return nil, fmt.Errorf("%s: server is required ('*' for all)", where)
		}
		rules = append(rules, r)
	}
	return rules, nil
}

// Compile checks cfg and builds the Policy. Warnings name harmless oddities, such as a
// group mapped to a scope that nothing defines (it grants nothing).
func Compile(cfg *Config) (*Policy, []string, error) {
	p := &Policy{groups: map[string][]*scope{}, scopes: map[string]*scope{}}
	get := func(name string) *scope {
		sc := p.scopes[name]
		if sc == nil {
			sc = &scope{name: name}
			p.scopes[name] = sc
		}
		return sc
	}
	for _, name := range sortedKeys(cfg.Scopes) {
		sc := get(name)
		for i, r := range cfg.Scopes[name] {
			if strings.TrimSpace(r.Server) == "" {
				return nil, nil, fmt.Errorf("scope %q rule %d: server is required ('*' for all)", name, i+1)
			}
			if len(r.Methods) == 0 {
				return nil, nil, fmt.Errorf("scope %q rule %d: methods is empty, so the rule grants nothing", name, i+1)
			}
			sc.rules = append(sc.rules, compiledRule{
				server:       normServer(r.Server),
				methods:      newSet(r.Methods),
				tools:        newSet(r.Tools),
				prompts:      newSet(r.Prompts),
				resources:    newSet(r.Resources),
				promptsAny:   r.Prompts == nil,
				resourcesAny: r.Resources == nil,
			})
		}
	}
	for _, name := range sortedKeys(cfg.UIScopes) {
		sc := get(name)
		sc.ui = map[UIPermission]set{}
		for perm, servers := range cfg.UIScopes[name] {
			if !slices.Contains(uiPermissions, UIPermission(perm)) {
				return nil, nil, fmt.Errorf("UI scope %q: unknown permission %q (list_service, register_service, toggle_service, modify_service, health_check_service)", name, perm)
			}
			norm := make([]string, len(servers))
			for i, s := range servers {
				norm[i] = strings.Trim(s, "/")
			}
			sc.ui[UIPermission(perm)] = newSet(norm)
		}
	}
	var warnings []string
	for _, group := range sortedKeys(cfg.GroupMappings) {
		for _, name := range cfg.GroupMappings[group] {
			sc, ok := p.scopes[name]
			if !ok {
				warnings = append(warnings, fmt.Sprintf("group %q maps to scope %q, which is not defined: it grants nothing", group, name))
				continue
			}
			if !slices.Contains(p.groups[group], sc) {
				p.groups[group] = append(p.groups[group], sc)
			}
		}
	}
	return p, warnings, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
