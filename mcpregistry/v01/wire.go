package v01

import (
	"encoding/json"
	"time"
)

// ServerJSONSchema is the server.json schema the v0.1 API's documents follow
// (modelcontextprotocol/registry docs/reference/server-json/server.schema.json).
const SchemaURL = "https://static.modelcontextprotocol.io/schemas/2025-09-29/server.schema.json"

// officialMetaKey is the registry-managed _meta block of a v0.1 ServerResponse.
const OfficialMetaKey = "io.modelcontextprotocol.registry/official"

// v0.1 list limits (official registry: default 30, at most 100).
const (
	DefaultLimit   = 30
	MaxLimit       = 100
	MaxDescription = 100 // server.json description maxLength, in characters
)

// ServerJSON is a server.json document (the subset this registry fills in).
type ServerJSON struct {
	Schema      string   `json:"$schema"`
	Name        string   `json:"name"`
	Description string   `json:"description"`
	Version     string   `json:"version"`
	Remotes     []Remote `json:"remotes,omitempty"` // none on a deleted entry
}

// Remote is a StreamableHttpTransport or SseTransport of server.json.
type Remote struct {
	Type    string   `json:"type"`
	URL     string   `json:"url"`
	Headers []Header `json:"headers,omitempty"`
}

// Header is a KeyValueInput of server.json.
type Header struct {
	Name        string `json:"name"`
	Description string `json:"description,omitempty"`
	IsRequired  bool   `json:"isRequired"`
	IsSecret    bool   `json:"isSecret"`
}

// Values of Official.Status (the official ServerResponse's lifecycle status).
const (
	StatusActive     = "active"
	StatusDeprecated = "deprecated"
	StatusDeleted    = "deleted"
)

// Official is the registry-managed metadata of one server version. PublishedAt is
// omitted on a deleted entry: a tombstone does not remember when the record was created.
type Official struct {
	Status      string    `json:"status"`
	PublishedAt time.Time `json:"publishedAt,omitzero"`
	UpdatedAt   time.Time `json:"updatedAt"`
	IsLatest    bool      `json:"isLatest"`
}

// ServerResponse is a ServerResponse of the official API.
type ServerResponse struct {
	Server ServerJSON          `json:"server"`
	Meta   map[string]Official `json:"_meta"`
}

// Metadata is the metadata of a ServerList.
type Metadata struct {
	NextCursor string `json:"nextCursor,omitempty"`
	Count      int    `json:"count"`
}

// ServerList is a ServerList of the official API.
type ServerList struct {
	Servers  []ServerResponse `json:"servers"`
	Metadata Metadata         `json:"metadata"`
}

// InServerJSON is the part of an incoming server.json this registry reads.
type InServerJSON struct {
	Name        string            `json:"name"`
	Description string            `json:"description"`
	Version     string            `json:"version"`
	Remotes     []InRemote        `json:"remotes"`
	Packages    []json.RawMessage `json:"packages"`
}

// InRemote is a RemoteTransport of an incoming server.json.
type InRemote struct {
	Type      string                     `json:"type"`
	URL       string                     `json:"url"`
	Headers   []Header                   `json:"headers"`
	Variables map[string]json.RawMessage `json:"variables"`
}

// InResponse is a ServerResponse read from another registry.
type InResponse struct {
	Server InServerJSON `json:"server"`
	Meta   struct {
		Official *struct {
			Status    string `json:"status"`
			UpdatedAt string `json:"updatedAt"`
			IsLatest  *bool  `json:"isLatest"`
		} `json:"io.modelcontextprotocol.registry/official"`
	} `json:"_meta"`
}

// InList is a ServerList read from another registry.
type InList struct {
	Servers  []InResponse `json:"servers"`
	Metadata struct {
		NextCursor string `json:"nextCursor"`
	} `json:"metadata"`
}
