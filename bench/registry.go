package bench

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddymcp/caddymcp/mcpregistry"
	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// Registry scale benchmarks (see registry_test.go): an in-process Caddy whose
// mcp_registry store holds many servers, each with a list of tools, served by the
// mcp_registry_api handler (official v0.1 API) on one loopback listener.

// Default size of the registry benchmarks.
const (
	RegistryServers = 20000
	RegistryTools   = 20
)

// RegistryNamespace is the namespace the v0.1 API publishes names under.
const RegistryNamespace = "bench.caddymcp"

// registry vocabulary: every server is one product of one domain; its tools are verbs
// on the domain's nouns, so that search terms have realistic document frequencies.
var registryDomains = []struct {
	name  string
	nouns []string
}{
	{"github", []string{"issue", "pull request", "repository", "branch", "commit", "release", "workflow"}},
	{"postgres", []string{"table", "query", "schema", "index", "row", "database", "view"}},
	{"slack", []string{"message", "channel", "thread", "user", "reaction", "file", "reminder"}},
	{"jira", []string{"ticket", "sprint", "board", "epic", "comment", "project", "worklog"}},
	{"kubernetes", []string{"pod", "deployment", "service", "namespace", "node", "log", "config map"}},
	{"s3", []string{"bucket", "object", "policy", "upload", "version", "tag", "lifecycle rule"}},
	{"calendar", []string{"event", "meeting", "attendee", "reminder", "calendar", "room", "schedule"}},
	{"stripe", []string{"payment", "invoice", "customer", "refund", "subscription", "charge", "coupon"}},
	{"sentry", []string{"error", "issue", "event", "release", "alert", "stack trace", "project"}},
	{"notion", []string{"page", "database", "block", "comment", "note", "workspace", "template"}},
	{"browser", []string{"page", "screenshot", "link", "form", "cookie", "tab", "download"}},
	{"pagerduty", []string{"incident", "schedule", "escalation policy", "service", "alert", "on-call shift", "note"}},
}

var registryVerbs = []string{"list", "get", "create", "update", "delete", "search", "archive", "export", "count", "describe"}

// RegistryQueries are the search queries of the search benchmark: a mix of exact tool
// words, synonyms and natural-language requests.
var RegistryQueries = []string{
	"create a github issue",
	"query postgres database",
	"send slack message to channel",
	"list kubernetes pods",
	"upload file to s3 bucket",
	"schedule a meeting",
	"refund a stripe payment",
	"find sentry errors for release",
	"open a ticket",
	"who is on call",
	"take a screenshot of a web page",
	"export notion page",
	"k8s deployment logs",
	"db schema",
	"archive old pull requests",
	"count invoices",
}

// registryServer returns server i of the generated registry and its tools.
func registryServer(i, tools int, now time.Time) (*model.Server, *model.ServerHealth) {
	d := registryDomains[i%len(registryDomains)]
	name := fmt.Sprintf("%s-%05d", d.name, i)
	s := &model.Server{
		Name:        name,
		Upstream:    fmt.Sprintf("http://10.%d.%d.%d:8080/mcp", i>>16&255, i>>8&255, i&255),
		Description: fmt.Sprintf("%s MCP server number %d: work with %ss and %ss.", d.name, i, d.nouns[0], d.nouns[1]),
		Tags:        []string{d.name, fmt.Sprintf("team-%d", i%50)},
		Enabled:     true,
		Source:      model.SourceAPI,
		Revision:    1,
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	h := &model.ServerHealth{Server: name, Status: model.HealthHealthy, CheckedAt: now, LastHealthyAt: now}
	for j := range tools {
		noun := d.nouns[(j+i)%len(d.nouns)]
		verb := registryVerbs[(j*3+i/len(registryDomains))%len(registryVerbs)]
		id := strings.ReplaceAll(noun, " ", "_")
		h.Tools = append(h.Tools, model.ToolInfo{
			Name:        verb + "_" + id, // unique: (j mod 7, 3j mod 10) differ for j < 70
			Description: fmt.Sprintf("%s a %s in %s.", strings.ToUpper(verb[:1])+verb[1:], noun, d.name),
			InputSchema: json.RawMessage(fmt.Sprintf(`{"type":"object","properties":{"%s_id":{}}}`, id)),
		})
	}
	return s, h
}

// RegistryExport is the export document of a generated registry of servers servers
// with tools tools each (deterministic).
func RegistryExport(servers, tools int) *store.Backup {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	doc := &store.Backup{Format: store.BackupFormat, Version: store.BackupVersion, ExportedAt: now}
	for i := range servers {
		s, h := registryServer(i, tools, now)
		doc.Servers = append(doc.Servers, s)
		doc.Status = append(doc.Status, h)
	}
	return doc
}

// RegistryEnv is an in-process Caddy serving a large registry.
type RegistryEnv struct {
	Servers, Tools int
	// URL is the v0.1 API's base, e.g. http://127.0.0.1:P (GET URL+"/v0.1/servers").
	URL string
	// Generate is how long generating and importing the store took (ImportStore, once).
	Generate time.Duration

	dir  string
	addr string
}

// registryConfig is the Caddy config of a RegistryEnv.
func (e *RegistryEnv) config() []byte {
	cfg := map[string]any{
		"admin":   map[string]any{"disabled": true, "config": map[string]any{"persist": false}},
		"logging": map[string]any{"logs": map[string]any{"default": map[string]any{"level": "ERROR"}}},
		"storage": map[string]any{"module": "file_system", "root": filepath.Join(e.dir, "caddy")},
		"apps": map[string]any{
			"mcp_registry": map[string]any{
				"storage":                map[string]any{"path": filepath.Join(e.dir, "registry.db")},
				"health":                 map[string]any{"disabled": true},
				"disable_builtin_server": true,
			},
			"http": map[string]any{"servers": map[string]any{"registry": map[string]any{
				"listen": []string{e.addr},
				"routes": []any{map[string]any{"handle": []any{map[string]any{
					"handler": "mcp_registry_api", "namespace": RegistryNamespace,
					"public_url": "http://" + e.addr,
				}}}},
				"automatic_https": map[string]any{"disable": true},
			}}},
		},
	}
	b, err := json.Marshal(cfg)
	if err != nil {
		panic(err)
	}
	return b
}

// StartRegistry generates a store of servers × tools (one ImportStore through
// App.Import), then leaves Caddy running with it. Close removes everything.
func StartRegistry(servers, tools int) (*RegistryEnv, error) {
	removeStaleRegistryDirs()
	dir, err := os.MkdirTemp("", fmt.Sprintf("caddymcp-registry-bench-%d-", os.Getpid()))
	if err != nil {
		return nil, err
	}
	e := &RegistryEnv{Servers: servers, Tools: tools, dir: dir}
	ok := false
	defer func() {
		if !ok {
			e.Close()
		}
	}()
	var raw bytes.Buffer
	if err := json.NewEncoder(&raw).Encode(RegistryExport(servers, tools)); err != nil {
		return nil, err
	}
	if int64(raw.Len()) > store.MaxBackupBytes {
		return nil, fmt.Errorf("bench: registry export is %d bytes, above the import limit", raw.Len())
	}
	if _, err := e.Load(); err != nil {
		return nil, err
	}
	start := time.Now()
	app, err := e.App()
	if err != nil {
		return nil, err
	}
	if _, err := app.Restore(context.Background(), &raw, store.RestoreReplace); err != nil {
		return nil, fmt.Errorf("bench: importing the registry: %w", err)
	}
	e.Generate = time.Since(start)
	if n := len(app.ListServers()); n != servers {
		return nil, fmt.Errorf("bench: the registry lists %d servers, want %d", n, servers)
	}
	// Let the search index finish building (a search waits for it), so that the
	// benchmarks measure the steady state, not a background build of seconds of CPU.
	app.Search("warm up the index", 1)
	ok = true
	return e, nil
}

// removeStaleRegistryDirs removes the stores left by registry benchmarks whose process
// has exited (a benchmark run keeps its store until the process ends).
func removeStaleRegistryDirs() {
	dirs, _ := filepath.Glob(filepath.Join(os.TempDir(), "caddymcp-registry-bench-*-*"))
	for _, d := range dirs {
		rest := strings.TrimPrefix(filepath.Base(d), "caddymcp-registry-bench-")
		pid, err := strconv.Atoi(rest[:max(0, strings.IndexByte(rest, '-'))])
		if err != nil || pid == os.Getpid() {
			continue
		}
		if syscall.Kill(pid, 0) == syscall.ESRCH {
			_ = os.RemoveAll(d)
		}
	}
}

// Load (re)loads the Caddy config (stopping whatever config runs) and returns how long
// caddy.Load took: opening the store, provisioning and starting every app.
func (e *RegistryEnv) Load() (time.Duration, error) {
	var err error
	for attempt := 0; ; attempt++ {
		if e.addr == "" || attempt > 0 {
			if e.addr = freeAddr(); e.addr == "" {
				return 0, fmt.Errorf("bench: no free loopback port")
			}
			e.URL = "http://" + e.addr
		}
		start := time.Now()
		err = caddy.Load(e.config(), true)
		if err == nil {
			return time.Since(start), nil
		}
		if attempt == 3 || !strings.Contains(err.Error(), "address already in use") {
			return 0, fmt.Errorf("bench: loading the Caddy config: %w", err)
		}
	}
}

// App is the running mcp_registry app.
func (e *RegistryEnv) App() (*mcpregistry.App, error) {
	v, err := caddy.ActiveContext().App("mcp_registry")
	if err != nil {
		return nil, err
	}
	return v.(*mcpregistry.App), nil
}

// Close stops Caddy and removes the store.
func (e *RegistryEnv) Close() {
	_ = caddy.Stop()
	_ = os.RemoveAll(e.dir)
}

// ListCursor is the v0.1 cursor that starts the page after server i.
func ListCursor(i int) string {
	s, _ := registryServer(i, 0, time.Time{})
	return encodeCursor(RegistryNamespace + "/" + s.Name)
}

// NewRegistryClient is an HTTP client with enough idle connections for concurrency
// clients to the one host.
func NewRegistryClient(concurrency int) *http.Client {
	return &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		MaxIdleConns:        concurrency * 2,
		MaxIdleConnsPerHost: concurrency * 2,
		IdleConnTimeout:     time.Minute,
	}}
}

// Latencies records durations from many goroutines and reports percentiles.
type Latencies struct {
	mu      sync.Mutex
	samples []time.Duration
	sorted  bool
}

// Add records one sample. Safe for concurrent use.
func (l *Latencies) Add(d time.Duration) {
	l.mu.Lock()
	l.samples = append(l.samples, d)
	l.sorted = false
	l.mu.Unlock()
}

// Len is the number of samples.
func (l *Latencies) Len() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.samples)
}

// Percentile returns the p-th percentile (0 < p ≤ 100, nearest rank), 0 without samples.
func (l *Latencies) Percentile(p float64) time.Duration {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) == 0 {
		return 0
	}
	if !l.sorted {
		sort.Slice(l.samples, func(i, j int) bool { return l.samples[i] < l.samples[j] })
		l.sorted = true
	}
	rank := int(float64(len(l.samples))*p/100+0.999999) - 1
	return l.samples[max(0, min(rank, len(l.samples)-1))]
}

func encodeCursor(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }
