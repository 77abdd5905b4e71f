package mcpregistry

import (
	"context"
	"errors"
	"sync"
	"time"

	"go.uber.org/zap"

	"github.com/caddymcp/caddymcp/mcpregistry/model"
	"github.com/caddymcp/caddymcp/mcpregistry/store"
)

// defaultTombstoneRetention is how long tombstones are kept when TombstoneRetention is 0.
const defaultTombstoneRetention = 30 * 24 * time.Hour

// maxTombstoneCleanupInterval caps the time between two tombstone cleanups.
const maxTombstoneCleanupInterval = time.Hour

// writeState is the App's state for runtime writes: the queue of index updates
// (write.go) and the background loop that purges expired tombstones.
type writeState struct {
	indexQueue indexSyncQueue

	cleanupCancel context.CancelFunc
	cleanupWG     sync.WaitGroup
}

// tombstoneRetention is the effective retention.
func (a *App) tombstoneRetention() time.Duration {
	if a.TombstoneRetention > 0 {
		return time.Duration(a.TombstoneRetention)
	}
	return defaultTombstoneRetention
}

// tombstoneCleanupInterval is how often the loop runs: retention/10, at most an hour.
func tombstoneCleanupInterval(retention time.Duration) time.Duration {
	return max(min(retention/10, maxTombstoneCleanupInterval), time.Second)
}

// purgeTombstones removes the tombstones of servers deleted before now minus the
// retention and returns how many it removed. A name whose tombstone is gone starts
// again at revision 1 when it is registered again.
func (a *App) purgeTombstones(now time.Time) (int, error) {
	cutoff := now.Add(-a.tombstoneRetention())
	var expired []string
	err := a.store.View(func(tx store.Tx) error {
		tombs, err := tx.ListTombstones()
		if err != nil {
			return err
		}
		for _, t := range tombs {
			if t.DeletedAt.Before(cutoff) {
				expired = append(expired, t.Name)
			}
		}
		return nil
	})
	if err != nil || len(expired) == 0 {
		return 0, err
	}
	n := 0
	err = a.store.Update(func(tx store.Tx) error {
		n = 0
		for _, name := range expired {
			// Read again in this transaction: the name may have been registered
			// (no tombstone) or deleted anew since the scan.
			t, err := tx.GetTombstone(name)
			if err != nil {
				if errors.Is(err, model.ErrNotFound) {
					continue
				}
				return err
			}
			if !t.DeletedAt.Before(cutoff) {
				continue
			}
			if err := tx.DeleteTombstone(name); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	return n, nil
}

// startTombstoneCleanup starts the loop that purges expired tombstones: once now, then
// every tombstoneCleanupInterval, until the config's context ends or
// stopTombstoneCleanup.
func (a *App) startTombstoneCleanup() {
	if a.store == nil || a.ctx.Context == nil {
		return
	}
	ctx, cancel := context.WithCancel(a.ctx)
	a.writes.cleanupCancel = cancel
	a.writes.cleanupWG.Add(1)
	go func() {
		defer a.writes.cleanupWG.Done()
		defer func() {
			if r := recover(); r != nil {
				a.logger.Error("tombstone cleanup panicked; it stops until the next config load",
					zap.Any("panic", r), zap.Stack("stack"))
			}
		}()
		retention := a.tombstoneRetention()
		tick := time.NewTicker(tombstoneCleanupInterval(retention))
		defer tick.Stop()
		for {
			if n, err := a.purgeTombstones(time.Now().UTC()); err != nil {
				a.logger.Error("purging expired tombstones", zap.Error(err))
			} else if n > 0 {
				a.logger.Info("purged expired tombstones", zap.Int("tombstones", n),
					zap.Duration("retention", retention))
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
}

// stopTombstoneCleanup stops the loop and waits for it.
func (a *App) stopTombstoneCleanup() {
	if a.writes.cleanupCancel != nil {
		a.writes.cleanupCancel()
	}
	a.writes.cleanupWG.Wait()
}
