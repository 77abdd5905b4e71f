package model

import (
	"encoding/json"
	"time"
)

// HealthStatus is a server's health as last checked.
type HealthStatus string

const (
	// HealthUnknown: never checked (or disabled and never checked).
	HealthUnknown HealthStatus = "unknown"
	// HealthHealthy: the last check connected, pinged and listed successfully.
	HealthHealthy HealthStatus = "healthy"
	// HealthUnhealthy: the last check failed; LastError says why.
	HealthUnhealthy HealthStatus = "unhealthy"
	// HealthAuthRequired: the server is up and takes each user's own authorization
	// (backend_auth oauth): it answered the registry's check, which has no user, with
	// 401 and a Bearer challenge (or let it initialize). Its tools are unknown: they
	// are not discovered with any user's token.
	HealthAuthRequired HealthStatus = "auth_required"
)

// ServerHealth is what the registry knows about a server's health and capabilities.
// Values handed out are never modified afterwards; a new check replaces them.
type ServerHealth struct {
	// Server is the server's name.
	Server string `json:"server"`
	// Status is healthy, unhealthy, auth_required or unknown.
	Status HealthStatus `json:"status"`
	// LatencyMS is how long the last check took, in milliseconds.
	LatencyMS float64 `json:"latency_ms,omitempty"`
	// LastError is why the last check failed (bounded, without credentials or query
	// strings); empty when it succeeded.
	LastError string `json:"last_error,omitempty"`
	// ProtocolVersion is the MCP version negotiated by the last successful check.
	ProtocolVersion string `json:"protocol_version,omitempty"`
	// ServerName and ServerVersion are what the server said about itself.
	ServerName    string `json:"server_name,omitempty"`
	ServerVersion string `json:"server_version,omitempty"`
	// CheckedAt is when the last check finished; LastHealthyAt when one last succeeded.
	CheckedAt     time.Time `json:"checked_at,omitzero"`
	LastHealthyAt time.Time `json:"last_healthy_at,omitzero"`
	// ConsecutiveFailures counts failed checks since the last success.
	ConsecutiveFailures int `json:"consecutive_failures,omitempty"`
	// Tools, Prompts and Resources are the lists from the last successful check; a
	// failed check keeps them.
	Tools     []ToolInfo     `json:"tools,omitempty"`
	Prompts   []PromptInfo   `json:"prompts,omitempty"`
	Resources []ResourceInfo `json:"resources,omitempty"`

	// Notifies says the last successful check's capabilities announce a list_changed
	// notification, so the server is worth watching. It is kept in memory only.
	Notifies bool `json:"-"`
}

// PromptInfo is a prompt a server offers.
type PromptInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
}

// ResourceInfo is a resource a server offers.
type ResourceInfo struct {
	URI  string `json:"uri"`
	Name string `json:"name,omitempty"`
}

// ToolInfo is a tool a server offers.
type ToolInfo struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	// InputSchema is the tool's JSON Schema for its arguments, as the server sent it.
	InputSchema json.RawMessage `json:"input_schema,omitempty"`
}
