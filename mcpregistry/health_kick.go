package mcpregistry

import (
	"context"
	"sync"

	"go.uber.org/zap"
)

// A server registered, re-pointed or enabled at runtime is checked at once (health,
// tools, prompts, resources), not at the next interval: whoever registered it wants to
// see its tools. Kicks go through a bounded queue served by Concurrency workers, so a
// burst of registrations cannot start a burst of connections; kicks that do not fit
// are dropped and the regular round picks those servers up.

// healthKickQueue bounds the servers waiting for an immediate check.
const healthKickQueue = 1024

// kickHealth asks for an immediate check of the named server; it never blocks.
func (a *App) kickHealth(name string) {
	q := a.health.kicks.Load()
	if q == nil {
		return // checks are off, or the app is not running
	}
	select {
	case *q <- name:
	default:
	}
}

// startHealthKicks starts the workers; they stop when ctx ends.
func (a *App) startHealthKicks(ctx context.Context) {
	q := make(chan string, healthKickQueue)
	a.health.kicks.Store(&q)
	var pending sync.Map // names queued or being checked: one check at a time is enough
	for range a.HealthChecks.Concurrency {
		a.health.wg.Add(1)
		go func() {
			defer a.health.wg.Done()
			select {
			case <-ctx.Done():
				return
			case <-a.appsStarted:
			}
			for {
				select {
				case <-ctx.Done():
					return
				case name := <-q:
					if _, busy := pending.LoadOrStore(name, true); busy {
						continue
					}
					a.kickCheck(ctx, name)
					pending.Delete(name)
				}
			}
		}()
	}
}

func (a *App) kickCheck(ctx context.Context, name string) {
	defer func() {
		if r := recover(); r != nil {
			a.logger.Error("immediate health check panicked", zap.String("server", name), zap.Any("panic", r), zap.Stack("stack"))
		}
	}()
	s := a.Server(name)
	if s == nil || !s.Enabled || isBuiltin(s) {
		return
	}
	a.checkAndRecord(ctx, s)
}
