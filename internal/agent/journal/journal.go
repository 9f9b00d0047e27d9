// Package journal is the agent's on-disk record of executions: it makes an
// agent start a given execution id at most once, even across agent crashes
// and repeated deliveries, and keeps every result until the server has
// acknowledged it (an outbox with at-least-once delivery).
//
// # Format
//
// One directory (mode 0700) holds a lock file (.lock, held with flock(2)
// while a Journal is open, so that two agents cannot share a directory) and
// one append-only log, journal.log (mode 0600). The log is a sequence of
// lines, each a JSON object, a space, the CRC-32C (Castagnoli) of the JSON
// as 8 lowercase hex digits, and a newline:
//
//	{"op":"format","v":1} 7d13b9d4
//	{"op":"start","id":"exec-1","t":"2030-01-02T03:04:05Z"} ec4c2ee7
//	{"op":"done","id":"exec-1","rec":{"id":"exec-1","payload":{"exit":0},"finished_at":"2030-01-02T03:04:08Z"}} 50122258
//	{"op":"ack","id":"exec-1","t":"2030-01-02T03:04:09Z"} 665861ac
//
// The first line names the format. Every other line is appended with a
// single write(2) on an O_APPEND descriptor:
//
//   - start (Begin): not synced. Once write returns the kernel has it, so
//     it survives a crash of the agent process; Sync (fsync of the log)
//     makes all starts so far survive a crash of the machine.
//   - done (Finish): fsynced before Finish returns.
//   - ack (Ack): not synced; a lost ack only makes the result be sent
//     again, which the server ignores.
//
// Open reads the log once and keeps an index in memory (per id: state,
// times, and where its records are); results are read back from the log
// with pread when needed rather than kept in memory. An id with a start
// but no done that was not begun by the current Journal was started by an
// agent process that died: it is Interrupted and is never run again.
//
// A crash in the middle of an append leaves a torn last line: Open cuts
// it off (a torn done thus leaves its id Interrupted, never New, since its
// start precedes it). A bad line followed by good ones is not a torn
// write but damage, and Open refuses the journal (ErrCorrupt) rather than
// guess: not running commands is safer than running them twice.
//
// GC forgets old entries by compaction: the live records are copied to
// journal.log.new, which is fsynced and renamed over journal.log, and the
// directory is fsynced; a crash at any point leaves either the old or the
// new log whole. Open compacts too when the log is mostly dead records.
//
// # Why a log
//
// The journal used to keep files per id (<id>.start, <id>.done written to
// a temporary file and renamed, <id>.ack). Creating a file costs far more
// CPU than appending to one (0.2–0.6 ms on ext4 on a small VM, two per
// command), which dominated the agent's share of fan-out latency with many
// agents on one machine. The log creates no file per command. A directory
// in that older layout is imported into the log by Open, with the same
// meaning, and its files are then removed.
package journal

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
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
// [A-Za-z0-9_-]. (Ids no longer become file names, but the old layout,
// which may still have to be imported, made them so; and a restricted
// alphabet keeps the log trivially readable.)
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

// ErrCorrupt is returned (wrapped) by Open when the log holds a damaged or
// inconsistent record that is not a torn last write.
var ErrCorrupt = errors.New("journal log is corrupt")

const (
	logName     = "journal.log"
	compactName = "journal.log.new"
	lockName    = ".lock"
	formatV     = 1

	// Old layout (imported by Open).
	startSuffix   = ".start"
	doneSuffix    = ".done"
	ackSuffix     = ".ack"
	corruptSuffix = ".done.corrupt"
	tmpPrefix     = ".tmp-"

	// Open compacts a log larger than this that is mostly dead records.
	compactMinSize = 1 << 20
)

// Log operations.
const (
	opFormat = "format"
	opStart  = "start"
	opDone   = "done"
	opAck    = "ack"
)

// logRec is one line of the log.
type logRec struct {
	Op  string    `json:"op"`
	V   int       `json:"v,omitempty"`
	ID  string    `json:"id,omitempty"`
	T   time.Time `json:"t,omitzero"`
	Rec *Record   `json:"rec,omitempty"`
}

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// encodeLine returns r as one log line.
func encodeLine(r logRec) ([]byte, error) {
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	if bytes.IndexByte(b, '\n') >= 0 { // cannot happen: Marshal escapes and compacts
		return nil, errors.New("newline in encoded record")
	}
	var sum [4]byte
	c := crc32.Checksum(b, crcTable)
	sum[0], sum[1], sum[2], sum[3] = byte(c>>24), byte(c>>16), byte(c>>8), byte(c)
	b = append(b, ' ')
	b = hex.AppendEncode(b, sum[:])
	return append(b, '\n'), nil
}

// decodeLine parses one log line (with its newline).
func decodeLine(line []byte) (logRec, error) {
	var r logRec
	const trailer = 1 + 8 + 1 // space, crc, newline
	n := len(line)
	if n < trailer+2 || line[n-1] != '\n' || line[n-trailer] != ' ' {
		return r, errors.New("malformed line")
	}
	body := line[:n-trailer]
	var sum [4]byte
	if _, err := hex.Decode(sum[:], line[n-9:n-1]); err != nil {
		return r, errors.New("malformed checksum")
	}
	if crc32.Checksum(body, crcTable) != uint32(sum[0])<<24|uint32(sum[1])<<16|uint32(sum[2])<<8|uint32(sum[3]) {
		return r, errors.New("checksum mismatch")
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return r, err
	}
	return r, nil
}

// span is where a line is in the log.
type span struct{ off, n int64 }

// entry is the in-memory index of one id. Every entry has a start record.
type entry struct {
	startedAt  time.Time
	running    bool // begun by this Journal, no result yet
	finishing  bool // Finish has appended the result and is syncing it
	done       bool // the result is durable
	finishedAt time.Time
	acked      bool

	start, result, ack span // result is set from the append (finishing)
}

// Journal is an open journal directory. Its methods are safe for
// concurrent use.
type Journal struct {
	dir  string
	lock *os.File
	now  func() time.Time // replaced in tests

	// mu guards everything below, and is held for every append (a
	// write(2) of one line) so that the index and the log agree.
	mu      sync.Mutex
	closed  bool
	broken  error // a failed fsync or undoable write: refuse further writes
	f       *os.File
	size    int64 // of the log; appends go here
	entries map[string]*entry

	// fmu keeps f open while it is fsynced without mu (Finish, Sync):
	// compaction and Close, which replace or close f, take it exclusively.
	fmu sync.RWMutex
}

// Open opens (creating it if needed, with mode 0700) the journal in dir
// and takes an exclusive lock on it; ErrLocked if another Journal holds it.
// Ids that were started but have no result become Interrupted (see
// Interrupted). A torn last record (a crash while appending) is cut off; a
// damaged record elsewhere makes Open fail with ErrCorrupt. A directory in
// the older one-file-per-id layout is imported into the log.
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
		if j.f != nil {
			j.f.Close()
		}
		lock.Close()
		return nil, err
	}
	return j, nil
}

// load opens and reads the log, imports the old layout and compacts if
// worthwhile.
func (j *Journal) load() error {
	// A compaction that died before its rename: the log is still whole.
	if err := os.Remove(j.path(compactName)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("journal: %w", err)
	}
	_, statErr := os.Lstat(j.path(logName))
	created := errors.Is(statErr, fs.ErrNotExist)
	f, err := os.OpenFile(j.path(logName), os.O_RDWR|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	j.f = f
	if err := j.readLog(); err != nil {
		return err
	}
	if j.size == 0 {
		line, _ := encodeLine(logRec{Op: opFormat, V: formatV})
		if _, err := j.appendLine(line); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	if created {
		if err := syncDir(j.dir); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
	}
	if err := j.importOld(); err != nil {
		return err
	}
	if j.size > compactMinSize && j.size > 2*j.liveSize() {
		if err := j.compactLocked(nil); err != nil {
			return err
		}
	}
	return nil
}

// readLog builds the index from the log, cutting off a torn tail.
func (j *Journal) readLog() error {
	name := j.path(logName)
	br := bufio.NewReaderSize(io.NewSectionReader(j.f, 0, 1<<62), 64<<10)
	var off int64
	bad := int64(-1)
	var badErr error
	for {
		line, err := br.ReadBytes('\n')
		if err != nil && err != io.EOF {
			return fmt.Errorf("journal: reading %s: %w", name, err)
		}
		if len(line) == 0 {
			break
		}
		if bad >= 0 {
			// After a bad line: any good line means the bad one was not
			// the last write, so this is damage, not a torn append.
			if _, derr := decodeLine(line); derr == nil {
				return fmt.Errorf("journal: %s: offset %d: %w (%v)", name, bad, ErrCorrupt, badErr)
			}
		} else if r, derr := decodeLine(line); derr != nil {
			bad, badErr = off, derr
		} else if aerr := j.apply(r, span{off, int64(len(line))}); aerr != nil {
			return fmt.Errorf("journal: %s: offset %d: %w (%v)", name, off, ErrCorrupt, aerr)
		}
		off += int64(len(line))
		if err == io.EOF {
			break
		}
	}
	j.size = off
	if bad >= 0 {
		// A torn last append (the process or machine died during write,
		// or before the data reached the disk). Nothing in it was ever
		// confirmed durable: cut it off.
		if err := j.f.Truncate(bad); err != nil {
			return fmt.Errorf("journal: cutting torn tail of %s: %w", name, err)
		}
		if err := j.f.Sync(); err != nil {
			return fmt.Errorf("journal: %w", err)
		}
		j.size = bad
	}
	return nil
}

// apply adds one record read from the log to the index.
func (j *Journal) apply(r logRec, sp span) error {
	if sp.off == 0 {
		if r.Op != opFormat {
			return errors.New("no format record")
		}
		if r.V != formatV {
			return fmt.Errorf("unknown format version %d", r.V)
		}
		return nil
	}
	if !ValidID(r.ID) {
		return fmt.Errorf("%s record with invalid id %q", r.Op, r.ID)
	}
	e := j.entries[r.ID]
	switch r.Op {
	case opStart:
		if e != nil {
			return fmt.Errorf("second start of %s", r.ID)
		}
		j.entries[r.ID] = &entry{startedAt: r.T, start: sp}
	case opDone:
		if e == nil || e.done {
			return fmt.Errorf("result of %s without a start or twice", r.ID)
		}
		if r.Rec == nil || r.Rec.ID != r.ID {
			return fmt.Errorf("bad result record for %s", r.ID)
		}
		e.done, e.finishedAt, e.result = true, r.Rec.FinishedAt, sp
	case opAck:
		if e == nil || !e.done {
			return fmt.Errorf("ack of %s without a result", r.ID)
		}
		if !e.acked {
			e.acked, e.ack = true, sp
		}
	default:
		return fmt.Errorf("unknown record %q", r.Op)
	}
	return nil
}

// liveSize is the size the log would have after compaction.
func (j *Journal) liveSize() int64 {
	n := int64(64) // the format line
	for _, e := range j.entries {
		n += e.start.n + e.result.n + e.ack.n
	}
	return n
}

// appendLine appends one line with one write, at the end of the log; mu
// must be held (or the Journal not yet shared). A failed write is undone.
func (j *Journal) appendLine(line []byte) (span, error) {
	if j.broken != nil {
		return span{}, j.broken
	}
	off := j.size
	n, err := j.f.Write(line)
	if err == nil && n != len(line) {
		err = io.ErrShortWrite
	}
	if err != nil {
		if n > 0 {
			// Remove the partial line, lest later appends turn it into
			// damage in the middle of the log.
			if terr := j.f.Truncate(off); terr != nil {
				j.broken = fmt.Errorf("journal: log unusable after failed write (%v): %w", err, terr)
			}
		}
		return span{}, err
	}
	j.size += int64(n)
	return span{off, int64(n)}, nil
}

// readLine reads back the record at sp; mu must be held.
func (j *Journal) readLine(sp span) (logRec, []byte, error) {
	buf := make([]byte, sp.n)
	if _, err := j.f.ReadAt(buf, sp.off); err != nil {
		return logRec{}, nil, err
	}
	r, err := decodeLine(buf)
	return r, buf, err
}

// readResult reads back the Record of id; mu must be held.
func (j *Journal) readResult(id string, e *entry) (*Record, error) {
	r, _, err := j.readLine(e.result)
	if err == nil && (r.Op != opDone || r.ID != id || r.Rec == nil) {
		err = errors.New("index points at the wrong record")
	}
	if err != nil {
		return nil, fmt.Errorf("journal: reading result of %s: %w", id, err)
	}
	return r.Rec, nil
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
	defer j.mu.Unlock()
	if j.closed {
		return 0, nil, ErrClosed
	}
	if e := j.entries[id]; e != nil {
		switch {
		case e.done:
			rec, err := j.readResult(id, e)
			if err != nil {
				return 0, nil, err
			}
			return Done, rec, nil
		case e.running:
			return Running, nil, nil
		default:
			return Interrupted, nil, nil
		}
	}
	now := j.now()
	line, err := encodeLine(logRec{Op: opStart, ID: id, T: now})
	if err == nil {
		var sp span
		if sp, err = j.appendLine(line); err == nil {
			// In the kernel once write returns: a crash of this process
			// cannot lose it. Sync makes it survive a machine crash; the
			// agent calls it while the script starts rather than before,
			// and reports the start to the server only after it.
			j.entries[id] = &entry{startedAt: now, running: true, start: sp}
			return New, nil, nil
		}
	}
	return 0, nil, fmt.Errorf("journal: recording start of %s: %w", id, err)
}

// Sync makes every start recorded so far durable against a machine crash
// (one fsync of the log, shared by all of them).
func (j *Journal) Sync() error {
	j.mu.Lock()
	if j.closed {
		j.mu.Unlock()
		return nil // Close synced the log
	}
	if j.broken != nil {
		j.mu.Unlock()
		return j.broken
	}
	f := j.f
	j.fmu.RLock()
	j.mu.Unlock()
	err := f.Sync()
	j.fmu.RUnlock()
	if err != nil {
		j.fail(err)
		return fmt.Errorf("journal: sync: %w", err)
	}
	return nil
}

// fail marks the log unusable after a failed fsync: what the kernel did
// with the unwritten data is unknown, so nothing more may be promised.
func (j *Journal) fail(err error) {
	j.mu.Lock()
	if j.broken == nil {
		j.broken = fmt.Errorf("journal: log unusable after failed sync: %w", err)
	}
	j.mu.Unlock()
}

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
	line, err := encodeLine(logRec{Op: opDone, ID: id, Rec: &rec})
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
	case e == nil:
		j.mu.Unlock()
		return fmt.Errorf("journal: %s: %w", id, ErrNotStarted)
	case e.done || e.finishing:
		j.mu.Unlock()
		return fmt.Errorf("journal: %s: %w", id, ErrAlreadyFinished)
	}
	sp, err := j.appendLine(line)
	if err != nil {
		j.mu.Unlock()
		return fmt.Errorf("journal: recording result of %s: %w", id, err)
	}
	// Until the fsync returns the result is not final: Begin answers
	// Running, Unacked does not list it. Compaction meanwhile copies it.
	e.finishing, e.result = true, sp
	f := j.f
	j.fmu.RLock()
	j.mu.Unlock()

	err = f.Sync()
	j.fmu.RUnlock()
	if err != nil {
		j.fail(err)
	}

	j.mu.Lock()
	defer j.mu.Unlock()
	e.finishing = false
	if err != nil {
		// The line may or may not reach the disk; the journal refuses
		// further writes, so the next Open decides.
		return fmt.Errorf("journal: recording result of %s: %w", id, err)
	}
	e.done, e.running, e.finishedAt = true, false, rec.FinishedAt
	return nil
}

// Unacked returns the finished records the server has not acknowledged,
// oldest (by FinishedAt) first.
func (j *Journal) Unacked() ([]Record, error) {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return nil, ErrClosed
	}
	ids := j.idsBy(func(e *entry) bool { return e.done && !e.acked }, func(e *entry) time.Time { return e.finishedAt })
	out := make([]Record, 0, len(ids))
	for _, id := range ids {
		rec, err := j.readResult(id, j.entries[id])
		if err != nil {
			return nil, err
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
	// Not synced: an ack lost in a machine crash only means the result is
	// sent once more, which the server ignores.
	line, err := encodeLine(logRec{Op: opAck, ID: id, T: j.now()})
	if err == nil {
		e.ack, err = j.appendLine(line)
	}
	if err != nil {
		return fmt.Errorf("journal: acking %s: %w", id, err)
	}
	e.acked = true
	return nil
}

// Interrupted returns the ids started by an earlier agent process that have
// no result, oldest start first, so that the agent can report them (for
// example by recording a result for them with Finish).
func (j *Journal) Interrupted() []string {
	j.mu.Lock()
	defer j.mu.Unlock()
	ids := j.idsBy(func(e *entry) bool { return !e.running && !e.done && !e.finishing }, func(e *entry) time.Time { return e.startedAt })
	return ids
}

// GC forgets acknowledged entries that finished more than olderThan ago,
// and interrupted entries without a result that started more than
// olderThan ago. A forgotten id is New again, so olderThan must exceed the
// time a command stays valid (the agent passes 7 days). Unacknowledged
// results are always kept. Forgetting rewrites the log (see the package
// documentation); if that fails, nothing is forgotten.
func (j *Journal) GC(olderThan time.Duration) error {
	j.mu.Lock()
	defer j.mu.Unlock()
	if j.closed {
		return ErrClosed
	}
	cutoff := j.now().Add(-olderThan)
	drop := map[string]bool{}
	for id, e := range j.entries {
		switch {
		case e.done && e.acked && e.finishedAt.Before(cutoff),
			!e.done && !e.running && !e.finishing && e.startedAt.Before(cutoff):
			drop[id] = true
		}
	}
	if len(drop) == 0 && !(j.size > compactMinSize && j.size > 2*j.liveSize()) {
		return nil
	}
	return j.compactLocked(drop)
}

// compactLocked rewrites the log without the entries in drop and without
// dead records; mu must be held. The new log is complete and fsynced
// before it replaces the old one by rename, and the directory is fsynced
// before anything more is appended, so a crash at any point leaves one
// whole log. On error before the rename nothing changes.
func (j *Journal) compactLocked(drop map[string]bool) (err error) {
	if j.broken != nil {
		return j.broken
	}
	tmp := j.path(compactName)
	nf, err := os.OpenFile(tmp, os.O_RDWR|os.O_CREATE|os.O_TRUNC|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("journal: compaction: %w", err)
	}
	defer func() {
		if nf != nil { // not installed
			nf.Close()
			os.Remove(tmp)
		}
	}()

	// Keep the log's order: sort the kept entries by their start.
	ids := make([]string, 0, len(j.entries))
	for id := range j.entries {
		if !drop[id] {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool { return j.entries[ids[a]].start.off < j.entries[ids[b]].start.off })

	w := bufio.NewWriterSize(nf, 256<<10)
	var off int64
	copyLine := func(sp span) (span, error) {
		if sp.n == 0 {
			return span{}, nil
		}
		_, line, err := j.readLine(sp) // checks the CRC: never copy damage
		if err != nil {
			return span{}, err
		}
		if _, err := w.Write(line); err != nil {
			return span{}, err
		}
		off += sp.n
		return span{off - sp.n, sp.n}, nil
	}
	head, _ := encodeLine(logRec{Op: opFormat, V: formatV})
	w.Write(head)
	off = int64(len(head))
	moved := make([][3]span, len(ids))
	for i, id := range ids {
		e := j.entries[id]
		for k, sp := range [3]span{e.start, e.result, e.ack} {
			if moved[i][k], err = copyLine(sp); err != nil {
				return fmt.Errorf("journal: compaction: copying records of %s: %w", id, err)
			}
		}
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("journal: compaction: %w", err)
	}
	if err := nf.Sync(); err != nil {
		return fmt.Errorf("journal: compaction: %w", err)
	}

	j.fmu.Lock() // wait for fsyncs of the old log in progress
	defer j.fmu.Unlock()
	if err := os.Rename(tmp, j.path(logName)); err != nil {
		return fmt.Errorf("journal: compaction: %w", err)
	}
	// From here the new log is the log, whatever happens.
	old := j.f
	j.f, j.size, nf = nf, off, nil
	old.Close()
	for i, id := range ids {
		e := j.entries[id]
		e.start, e.result, e.ack = moved[i][0], moved[i][1], moved[i][2]
	}
	for id := range drop {
		delete(j.entries, id)
	}
	if err := syncDir(j.dir); err != nil {
		// Appends to the new log could be lost with the rename in a
		// machine crash: refuse them.
		j.broken = fmt.Errorf("journal: log unusable after failed directory sync: %w", err)
		return j.broken
	}
	return nil
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
	j.fmu.Lock() // wait for fsyncs in progress
	defer j.fmu.Unlock()
	err := j.f.Sync() // as Sync would: Sync after Close has nothing to do
	if cerr := j.f.Close(); err == nil {
		err = cerr
	}
	if cerr := j.lock.Close(); err == nil { // releases the flock
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("journal: close: %w", err)
	}
	return nil
}

// importOld imports a directory in the older one-file-per-id layout into
// the log, with the meaning the older code gave it, then removes its
// files. Ids already in the log (an import that died before removing the
// files) are skipped. A crash at any point is safe: the files go only
// after the log holding their records is fsynced.
func (j *Journal) importOld() error {
	des, err := os.ReadDir(j.dir)
	if err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	type oldEntry struct {
		started, done, acked bool
		startedAt            time.Time
		rec                  *Record
	}
	old := map[string]*oldEntry{}
	get := func(id string) *oldEntry {
		if old[id] == nil {
			old[id] = &oldEntry{}
		}
		return old[id]
	}
	var files []string
	for _, de := range des {
		name := de.Name()
		if strings.HasPrefix(name, tmpPrefix) {
			files = append(files, name) // a Finish that died before its rename
			continue
		}
		id, suffix, ok := strings.Cut(name, ".")
		if !ok || !ValidID(id) || !de.Type().IsRegular() {
			continue // not ours
		}
		switch "." + suffix {
		case startSuffix:
			e := get(id)
			e.started, e.startedAt = true, readStartTime(j.path(name))
		case doneSuffix:
			if rec, err := readRecord(j.path(name), id); err == nil {
				e := get(id)
				e.done, e.rec = true, rec
			} else {
				get(id).started = true // unreadable: treat as interrupted
			}
		case ackSuffix:
			e := get(id)
			e.acked = true
			// Ack renamed .done to .ack; an empty .ack beside a .done is
			// an even older form.
			if rec, err := readRecord(j.path(name), id); err == nil {
				e.done, e.rec = true, rec
			}
		case corruptSuffix:
			get(id).started = true // a result once found unreadable
		default:
			continue
		}
		files = append(files, name)
	}
	if len(files) == 0 {
		return nil
	}
	ids := make([]string, 0, len(old))
	for id, e := range old {
		if j.entries[id] != nil || !e.started && !e.done {
			continue // in the log already; or an ack whose result GC removed
		}
		if e.startedAt.IsZero() {
			if e.done {
				e.startedAt = e.rec.FinishedAt
			} else {
				e.startedAt = j.now()
			}
		}
		ids = append(ids, id)
	}
	sort.Slice(ids, func(a, b int) bool {
		ea, eb := old[ids[a]], old[ids[b]]
		if !ea.startedAt.Equal(eb.startedAt) {
			return ea.startedAt.Before(eb.startedAt)
		}
		return ids[a] < ids[b]
	})
	for _, id := range ids {
		o := old[id]
		e := &entry{startedAt: o.startedAt}
		recs := []logRec{{Op: opStart, ID: id, T: o.startedAt}}
		if o.done {
			recs = append(recs, logRec{Op: opDone, ID: id, Rec: o.rec})
			if o.acked {
				recs = append(recs, logRec{Op: opAck, ID: id, T: j.now()})
			}
		}
		for _, r := range recs {
			line, err := encodeLine(r)
			if err != nil {
				return fmt.Errorf("journal: importing %s: %w", id, err)
			}
			sp, err := j.appendLine(line)
			if err != nil {
				return fmt.Errorf("journal: importing %s: %w", id, err)
			}
			switch r.Op {
			case opStart:
				e.start = sp
			case opDone:
				e.result, e.done, e.finishedAt = sp, true, o.rec.FinishedAt
			case opAck:
				e.ack, e.acked = sp, true
			}
		}
		j.entries[id] = e
	}
	if err := j.f.Sync(); err != nil {
		return fmt.Errorf("journal: importing: %w", err)
	}
	for _, name := range files {
		if err := os.Remove(j.path(name)); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("journal: removing imported %s: %w", name, err)
		}
	}
	if err := syncDir(j.dir); err != nil {
		return fmt.Errorf("journal: %w", err)
	}
	return nil
}

// readStartTime returns the time recorded in an old .start file, or its
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

// readRecord reads an old .done or .ack file holding the Record of id.
func readRecord(path, id string) (*Record, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var rec Record
	if err := json.Unmarshal(data, &rec); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if rec.ID == "" {
		rec.ID = id
	} else if rec.ID != id {
		return nil, fmt.Errorf("%s: record for %q", path, rec.ID)
	}
	return &rec, nil
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

// idsBy returns the ids whose entries match keep, ordered by at (then by
// id). The caller holds j.mu.
func (j *Journal) idsBy(keep func(*entry) bool, at func(*entry) time.Time) []string {
	var ids []string
	for id, e := range j.entries {
		if keep(e) {
			ids = append(ids, id)
		}
	}
	sort.Slice(ids, func(a, b int) bool {
		ta, tb := at(j.entries[ids[a]]), at(j.entries[ids[b]])
		if !ta.Equal(tb) {
			return ta.Before(tb)
		}
		return ids[a] < ids[b]
	})
	return ids
}
