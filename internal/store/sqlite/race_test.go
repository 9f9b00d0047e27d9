//go:build race

package sqlite

// raceEnabled reports whether the race detector, which slows SQLite
// several times, is on.
const raceEnabled = true
