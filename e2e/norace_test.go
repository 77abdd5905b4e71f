//go:build !race

package e2e

// raceEnabled reports whether this test binary runs with the race detector; the caddy
// binary under test is then built with -race too.
const raceEnabled = false
