package mcpgateway

import (
	"errors"
	"strings"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// gatewayMetrics are the gateway's collectors in Caddy's metrics registry (one registry
// per loaded config). Labels never name users, tokens or tools: server is a registry
// server name ("unknown" for paths that name none), method a known MCP method, "batch",
// "GET", "DELETE" or "other", decision one of allow, deny, error, unauthenticated.
type gatewayMetrics struct {
	requests       *prometheus.CounterVec   // caddy_mcp_requests_total{server,method,decision}
	duration       *prometheus.HistogramVec // caddy_mcp_request_duration_seconds{server,method}
	upstreamErrors *prometheus.CounterVec   // caddy_mcp_upstream_errors_total{server,kind}
	openStreams    *prometheus.GaugeVec     // caddy_mcp_open_streams{server}

	// series caches the children of requests and duration per label set, sparing the
	// hot path the label hashing of WithLabelValues.
	series sync.Map // seriesKey → *requestSeries
}

type seriesKey struct{ server, method, decision string }

type requestSeries struct {
	requests prometheus.Counter
	duration prometheus.Observer
}

// observe counts one request and its duration.
func (m *gatewayMetrics) observe(server, method, decision string, seconds float64) {
	k := seriesKey{server, method, decision}
	v, ok := m.series.Load(k)
	if !ok {
		v, _ = m.series.LoadOrStore(k, &requestSeries{
			requests: m.requests.WithLabelValues(server, method, decision),
			duration: m.duration.WithLabelValues(server, method),
		})
	}
	s := v.(*requestSeries)
	s.requests.Inc()
	s.duration.Observe(seconds)
}

// newGatewayMetrics registers the collectors in reg. Several gateways in one config
// share one registry: a collector already registered under the same description is
// reused, as Caddy's own handlers do.
func newGatewayMetrics(reg prometheus.Registerer) (*gatewayMetrics, error) {
	const ns, sub = "caddy", "mcp"
	m := &gatewayMetrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "requests_total",
			Help: "MCP requests through the gateway, by server, JSON-RPC method and authorization decision.",
		}, []string{"server", "method", "decision"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Namespace: ns, Subsystem: sub, Name: "request_duration_seconds",
			Help:    "Time the gateway took to answer an MCP request (to the response head for event streams).",
			Buckets: prometheus.DefBuckets,
		}, []string{"server", "method"}),
		upstreamErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: ns, Subsystem: sub, Name: "upstream_errors_total",
			Help: "Failed upstream exchanges, by server and kind (unreachable, timeout, filter).",
		}, []string{"server", "kind"}),
		openStreams: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: ns, Subsystem: sub, Name: "open_streams",
			Help: "Event streams (GET) the gateway currently carries, by server.",
		}, []string{"server"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	if m.requests, err = register(reg, m.requests); err != nil {
		return nil, err
	}
	if m.duration, err = register(reg, m.duration); err != nil {
		return nil, err
	}
	if m.upstreamErrors, err = register(reg, m.upstreamErrors); err != nil {
		return nil, err
	}
	if m.openStreams, err = register(reg, m.openStreams); err != nil {
		return nil, err
	}
	return m, nil
}

// register registers c, or returns the equal collector registered before it.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	err := reg.Register(c)
	if err == nil {
		return c, nil
	}
	var are prometheus.AlreadyRegisteredError
	if errors.As(err, &are) {
		if existing, ok := are.ExistingCollector.(C); ok {
			return existing, nil
		}
	}
	return c, err
}

// knownMethods are the MCP methods that get their own metrics label; any other
// method counts as "other", so a client cannot grow the label set.
var knownMethods = map[string]string{}

func init() {
	for _, m := range []string{
		"initialize", "ping", "server/discover",
		"tools/list", "tools/call",
		"prompts/list", "prompts/get",
		"resources/list", "resources/read", "resources/templates/list",
		"resources/subscribe", "resources/unsubscribe",
		"completion/complete", "logging/setLevel",
		"subscriptions/listen",
		"tasks/get", "tasks/list", "tasks/result", "tasks/cancel",
		"notifications/initialized", "notifications/cancelled", "notifications/progress",
		"notifications/roots/list_changed",
	} {
		knownMethods[m] = m
	}
}

// methodLabel bounds a JSON-RPC method (or batch, comma-separated) to the label set.
func methodLabel(method string) string {
	if method == "" {
		return "other"
	}
	if strings.IndexByte(method, ',') >= 0 {
		return "batch"
	}
	if m, ok := knownMethods[method]; ok {
		return m
	}
	return "other"
}

// httpMethodLabel labels a request that carries no JSON-RPC body (GET stream, DELETE
// session end).
func httpMethodLabel(m string) string {
	switch m {
	case "GET":
		return "GET"
	case "DELETE":
		return "DELETE"
	}
	return "other"
}

// upstreamErrorKind maps a gateway error code to the upstream_errors_total kind.
func upstreamErrorKind(code int) string {
	switch code {
	case codeUpstreamUnreachable:
		return "unreachable"
	case codeUpstreamTimeout:
		return "timeout"
	case codeFilterFailed:
		return "filter"
	}
	return ""
}
