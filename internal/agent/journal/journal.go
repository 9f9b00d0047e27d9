// Package journal is the agent's on-disk record of executions: it makes an
// agent start a given execution id at most once, even across agent crashes
// and repeated deliveries, and keeps every result until the server has
// acknowledged it (an outbox with at-least-once delivery).
//
// Layout: one directory (mode 0700), holding for each id
//
//	<id>.start   created with O_CREAT|O_EXCL and fsynced (file and
//	             directory) before Begin returns New
//	<id>.done    the Record as JSON, written to a temporary file, fsynced
//	             and renamed into place by Finish
//	<id>.ack     created by Ack once the server has the result
//
// plus a lock file (.lock) held with flock(2) while a Journal is open, so
// that two agents cannot share a directory. An id with a .start file but no
// .done file that was not begun by the current Journal was started by an
// agent process that died: it is Interrupted and is never run again.
package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"
)

// State is what Begin found out about an id.
type State int

// States returned by Begin.
const (
	// New: the id was never seen; it is now recorded as started and the
	// caller must run it (exactly this once).
	New State = iota
	// Running: the id was begun by this Journal and has no result yet (a
	// repeated delivery while it runs). Do not run it again.
	Running
	// Done: the id has a recorded result, returned with the state. Answer
	// with that result; do not run it again.
	Done
	// Interrupted: the id was started by an earlier agent process that
	// died before recording a result. Never run it again; report its
	// outcome as unknown.
	Interrupted
)

// String returns the state's name.
func (s State) String() string {
	switch s {
	case New:
		return "new"
	case Running:
		return "running"
	case Done:
		return "done"
	case Interrupted:
		return "interrupted"
	}
	return fmt.Sprintf("State(%d)", int(s))
}

// Record is the result of one execution. Payload is opaque to the journal
// but must be valid JSON (nil is stored as null).
type Record struct {
	ID         string          `json:"id"`
	Payload    json.RawMessage `json:"payload"`
	FinishedAt time.Time       `json:"finished_at"`
}

// Errors returned (wrapped) by Journal methods.
var (
	ErrInvalidID       = errors.New("invalid execution id (want 1 to 64 characters of A-Z, a-z, 0-9, '_' and '-')")
	ErrNotStarted      = errors.New("execution was not begun")
	ErrAlreadyFinished = errors.New("execution already has a result")
	ErrNotFinished     = errors.New("execution has no result")
	ErrLocked          = errors.New("journal directory is in use by another process")
	ErrClosed          = errors.New("journal is closed")
)

// MaxIDLength is the maximum length of an execution id.
const MaxIDLength = 64

// ValidID reports whether id may be used: 1 to 64 characters of
// [A-Za-z0-9_-]. Only such ids ever become file names.
func ValidID(id string) bool {
	if len(id) == 0 || len(id) > MaxIDLength {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

func checkID(id string) error {
	if !ValidID(id) {
		return fmt.Errorf("%w: %q", ErrInvalidID, id)
	}
	return nil
}

const (
	startSuffix = ".start"
	doneSuffix  = ".done"
	ackSuffix   = ".ack"
	tmpPrefix   = ".tmp-"
	lockName    = ".lock"
)

// entry is the in-memory index of one id's files.
type entry struct {
	started    bool // a .start file exists (or is being written)
	startedAt  time.Time
	running    bool // begun by this Journal, no result yet
	finishing  bool // Finish is writing the result
	done       bool
	finishedAt time.Time
	acked      bool
	// ackHoldsRecord: the result lives in the .ack file (Ack renames
	// .done to .ack) rather than in .done.
	ackHoldsRecord bool
}

// Journal is an open journal directory. Its methods are safe for
// concurrent use.
type Journal struct {
	dir  string
	lock *os.File
	now  func() time.Time // replaced in tests

	mu      sync.Mutex
	closed  bool
	entries map[string]*entry
}

// Open opens (creating it if needed, with mode 0700) the journal in dir
// and takes an exclusive lock on it; ErrLocked if another Journal holds it.
// Ids that were started but have no result become Interrupted (see
// Interrupted). Leftovers of interrupted writes are cleaned up.
func Open(dir string) (*Journal, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := os.Chmod(dir, 0o700); err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, lockName), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("journal: %w", err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("journal %s: %w", dir, ErrLocked)
		}
		return nil, fmt.Errorf("journal %s: lock: %w", dir, err)
	}
	j := &Journal{dir: dir, lock: lock, now: time.Now, entries: map[string]*entry{}}
	if err := j.load(); err != nil {
		lock.Close()
		return nil, err
	}
	return j, nil
}

// load builds the index from the directory.
func (j *Journal) load() error {
	ents, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	changed := false
	get := func(id string) *entry {
		e := j.entries[id]
		if e == nil {
			e = &entry{}
			j.entries[id] = e
		}
		return e
	}
	for _, de := range ents {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			// A Finish that died before its rename.
			if err := os.Remove(j.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("journal: removing leftover %s: %w", name, err)
			}
			changed = true
			continue
		}
		id, suffix, ok := strings.Cut(name, ".")
		if !ok || !ValidID(id) || !de.Type().IsRegular() {
			continue // not ours (the lock file, moved-aside corrupt files, ...)
		}
		switch "." + suffix {
		case startSuffix:
			e := get(id)
			e.started = true
			e.startedAt = readStartTime(j.path(name))
		case doneSuffix:
			rec, err := readRecord(j.path(name))
			if err != nil {
				// Cannot happen with rename-based writes unless the disk
				// lies; keep the evidence and treat the id as interrupted.
				if err := os.Rename(j.path(name), j.path(name+".corrupt")); err != nil {
					return fmt.Errorf("journal: moving aside corrupt %s: %w", name, err)
				}
				changed = true
				e := get(id)
				e.started = true
				if e.startedAt.IsZero() {
					e.startedAt = j.now()
				}
				continue
			}
			e := get(id)
			e.done = true
			e.finishedAt = rec.FinishedAt
		case ackSuffix:
			// An acknowledged result: the .done file renamed. (An empty
			// .ack next to a .done is the older format: acked, result in
			// .done.)
			e := get(id)
			e.acked = true
			if rec, err := readRecord(j.path(name)); err == nil {
				e.done, e.ackHoldsRecord, e.finishedAt = true, true, rec.FinishedAt
			}
		}
	}
	for id, e := range j.entries {
		if e.acked && !e.done {
			// An ack whose result is gone (GC died half-way).
			if err := os.Remove(j.path(id + ackSuffix)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return fmt.Errorf("journal: %w", err)
			}
			changed = true
			e.acked = false
		}
		if !e.started && !e.done {
			delete(j.entries, id)
		}
	}
	if changed {
		return syncDir(j.dir)
	}
	return nil
}

// readStartTime returns the time recorded in a .start file, or its
// modification time if the content is unreadable (a crash before fsync).
func readStartTime(path string) time.Time {
	var st struct {
		StartedAt time.Time `json:"started_at"`
	}
	if data, err := os.ReadFile(path); err == nil && json.Unmarshal(data, &st) == nil && !st.StartedAt.IsZero() {
		return st.StartedAt
	}
	if fi, err := os.Stat(path); err == nil {
		return fi.ModTime()
	}
	return time.Now()
}

func readRecord(path string) (*Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return &rec, nil
}

func (j *Journal) path(name string) string { return filepath.Join(j.dir, name) }

// Dir returns the journal's directory.
func (j *Journal) Dir() string { return j.dir }

// Begin records that id is being started, atomically (durable against a
// crash of the agent process; call Sync for a machine crash), and
// returns New — or, if id was seen before, Running, Done (with its Record)
// or Interrupted. Of concurrent Begin calls for one id exactly one returns
// New. The caller runs the execution only on New; on error it must not run
// it either.
func (j *Journal) Begin(id string) (State, *Record, error) {
	if err := checkID(id); err != nil {
		return 0, nil, err
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return 0, nil, ErrClosed
	}
	if e := j.entries[id]; e != nil {
		defer j.mu.Unlock()
		switch {
		case e.done:
			name := id + doneSuffix
			if e.ackHoldsRecord {
				name = id + ackSuffix
			}
			rec, err := readRecord(j.path(name))
			if err != nil {
				return 0, nil, fmt.Errorf("journal: reading result of %s: %w", id, err)
			}
			return Done, rec, nil
		case e.running:
			return Running, nil, nil
		default:
			return Interrupted, nil, nil
		}
	}
	now := j.now()
	e := &entry{started: true, startedAt: now, running: true}
	j.entries[id] = e
	j.mu.Unlock()

	err := j.writeStart(id, now)
	if err == nil {
		return New, nil, nil
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	e.running = false
	if errors.Is(err, fs.ErrExist) {
		// A .start file this Journal did not know about: someone else
		// started the id. Never run it.
		return Interrupted, nil, nil
	}
	if rmErr := os.Remove(j.path(id + startSuffix)); rmErr == nil || errors.Is(rmErr, fs.ErrNotExist) {
		delete(j.entries, id) // as if never begun
	}
	return 0, nil, fmt.Errorf("journal: recording start of %s: %w", id, err)
}

func (j *Journal) writeStart(id string, now time.Time) error {
	f, err := os.OpenFile(j.path(id+startSuffix), os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	data, _ := json.Marshal(struct {
		ID        string    `json:"id"`
		StartedAt time.Time `json:"started_at"`
		PID       int       `json:"pid"`
	}{id, now, os.Getpid()})
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// The file's existence is what makes a start at-most-once: against a
	// crash of the agent process that is enough (the kernel has the entry).
	// Against a crash of the machine, Sync makes starts durable; the agent
	// calls it while the script starts rather than before, and reports the
	// start to the server only after it. Its content (start time, pid) is
	// informative: an empty or torn file still reads as started.
	return nil
}

// Sync makes every start recorded so far durable against a machine crash
// (one fsync of the journal directory, shared by all of them).
func (j *Journal) Sync() error { return syncDir(j.dir) }

// Finish durably stores the result of id, which must have been begun (by
// this or an earlier agent process, so Interrupted ids can be given a
// result too) and not finished yet. rec.ID may be empty (it is set to id)
// but must otherwise equal id; a zero rec.FinishedAt is set to now. The
// record then appears in Unacked until Ack.
func (j *Journal) Finish(id string, rec Record) error {
	if err := checkID(id); err != nil {
		return err
	}
	if rec.ID == "" {
		rec.ID = id
	} else if rec.ID != id {
		return fmt.Errorf("journal: Finish(%q) with a record for %q", id, rec.ID)
	}
	if rec.FinishedAt.IsZero() {
		rec.FinishedAt = j.now()
	}
	data, err := json.Marshal(rec)
	if err != nil {
		return fmt.Errorf("journal: encoding result of %s: %w", id, err)
	}

	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return ErrClosed
	}
	e := j.entries[id]
	switch {
	case e == nil || !e.started && !e.done:
		j.mu.Unlock()
		return fmt.Errorf("journal: %s: %w", id, ErrNotStarted)
	case e.done || e.finishing:
		j.mu.Unlock()
		return fmt.Errorf("journal: %s: %w", id, ErrAlreadyFinished)
	}
	e.finishing = true
	j.mu.Unlock()

	err = j.writeDone(id, data)

	j.mu.Lock()
	defer j.mu.Unlock()
	e.finishing = false
	if err != nil {
		return fmt.Errorf("journal: recording result of %s: %w", id, err)
	}
	e.done, e.running, e.finishedAt = true, false, rec.FinishedAt
	return nil
}

func (j *Journal) writeDone(id string, data []byte) error {
	f, err := os.CreateTemp(j.dir, tmpPrefix+id+"-*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(data)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, j.path(id+doneSuffix))
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	return syncDir(j.dir)
}

// Unacked returns the finished records the server has not acknowledged,
// oldest (by FinishedAt) first.
func (j *Journal) Unacked() ([]Record, error) {
	type item struct {
		id string
		at time.Time
	}
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil, ErrClosed
	}
	var items []item
	for id, e := range j.entries {
		if e.done && !e.acked {
			items = append(items, item{id, e.finishedAt})
		}
	}
	j.mu.Unlock()
	sort.Slice(items, func(a, b int) bool {
		if !items[a].at.Equal(items[b].at) {
			return items[a].at.Before(items[b].at)
		}
		return items[a].id < items[b].id
	})
	out := make([]Record, 0, len(items))
	for _, it := range items {
		rec, err := readRecord(j.path(it.id + doneSuffix))
		if err != nil {
			return nil, fmt.Errorf("journal: reading result of %s: %w", it.id, err)
		}
		out = append(out, *rec)
	}
	return out, nil
}

// Ack marks the result of id as delivered, so that Unacked no longer
// returns it. Acking twice is not an error; acking an id without a result
// is (ErrNotFinished).
func (j *Journal) Ack(id string) error {
	if err := checkID(id); err != nil {
		return err
	}
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	e := j.entries[id]
	if e == nil || !e.done {
		return fmt.Errorf("journal: %s: %w", id, ErrNotFinished)
	}
	if e.acked {
		return nil
	}
	// The result moves to <id>.ack: a rename, no new file. Not synced: an
	// ack lost in a machine crash only means the result is sent once more,
	// which the server ignores.
	if err := os.Rename(j.path(id+doneSuffix), j.path(id+ackSuffix)); err != nil {
		return fmt.Errorf("journal: acking %s: %w", id, err)
	}
	e.acked, e.ackHoldsRecord = true, true
	return nil
}

// Interrupted returns the ids started by an earlier agent process that have
// no result, oldest start first, so that the agent can report them (for
// example by recording a result for them with Finish).
func (j *Journal) Interrupted() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	var ids []string
	for id, e := range j.entries {
		if e.started && !e.running && !e.done && !e.finishing {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool {
		ea, eb := j.entries[ids[a]], j.entries[ids[b]]
		if !ea.startedAt.Equal(eb.startedAt) {
			return ea.startedAt.Before(eb.startedAt)
		}
		return ids[a] < ids[b]
	})
	return ids
}

// GC forgets acknowledged entries that finished more than olderThan ago,
// and interrupted entries without a result that started more than
// olderThan ago. A forgotten id is New again, so olderThan must exceed the
// time a command stays valid (the agent passes 7 days). Unacknowledged
// results are always kept.
func (j *Journal) GC(olderThan time.Duration) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	cutoff := j.now().Add(-olderThan)
	removed := false
	var firstErr error
	for id, e := range j.entries {
		var names []string
		switch {
		case e.done && e.acked && e.finishedAt.Before(cutoff):
			// .start first: a crash half-way leaves a result without a
			// start, which still reads as Done, never as Interrupted.
			names = []string{id + startSuffix, id + doneSuffix + ".corrupt", id + doneSuffix, id + ackSuffix}
		case e.started && !e.done && !e.running && !e.finishing && e.startedAt.Before(cutoff):
			names = []string{id + startSuffix, id + doneSuffix + ".corrupt"}
		default:
			continue
		}
		ok := true
		for _, n := range names {
			if err := os.Remove(j.path(n)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				if firstErr == nil {
					firstErr = fmt.Errorf("journal: gc: %w", err)
				}
				ok = false
				break
			}
			removed = true
		}
		if ok {
			delete(j.entries, id)
		}
	}
	if removed {
		if err := syncDir(j.dir); err != nil && firstErr == nil {
			firstErr = err
		}
	}
	return firstErr
}

// Close releases the directory lock. The Journal cannot be used afterwards;
// ids it began and did not finish are Interrupted for the next Open.
func (j *Journal) Close() error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil
	}
	j.closed = true
	return j.lock.Close() // closing the descriptor releases the flock
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
