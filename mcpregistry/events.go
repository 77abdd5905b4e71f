package mcpregistry

// Events the registry emits through Caddy's events app, origin "mcp_registry". Handlers
// subscribe to them by name in the events app's config (for example to run a command or
// call a webhook); the data of each is listed with it. They are emitted only once every
// app of the config has started; a write or check before that is only logged.
const (
	// EventServerRegistered: a server was registered at run time (REST API,
	// register_server, server.json import or sync). Data: "server" (name), "path",
	// "revision".
	EventServerRegistered = "server_registered"
	// EventServerUpdated: a server record changed at run time, including enabling or
	// disabling it. Data: "server", "path", "revision".
	EventServerUpdated = "server_updated"
	// EventServerRemoved: a server was deleted at run time. Data: "server", "path",
	// "revision" (its tombstone's).
	EventServerRemoved = "server_removed"
	// EventServerHealthChanged: a check found a server's status changed. Data:
	// "server", "status" and "previous" (healthy, unhealthy, auth_required or unknown).
	EventServerHealthChanged = "server_health_changed"
	// EventServerToolsChanged: a check found a server's tools, prompts or resources
	// changed since the previous one. Data: "server", "tools" (the number of tools).
	EventServerToolsChanged = "server_tools_changed"
)

func (a *App) emit(name string, data map[string]any) {
	if a.events == nil {
		return
	}
	select {
	case <-a.appsStarted:
		a.events.Emit(a.ctx, name, data)
	default:
		// The config's apps are not all started yet (only a manual refresh gets here).
	}
}
