package journal

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

func open(t *testing.T, dir string) *Journal {
	t.Helper()
	j, err := Open(dir)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { j.Close() })
	return j
}

func begin(t *testing.T, j *Journal, id string, want State) *Record {
	t.Helper()
	st, rec, err := j.Begin(id)
	if err != nil {
		t.Fatalf("Begin(%q): %v", id, err)
	}
	if st != want {
		t.Fatalf("Begin(%q) = %v, want %v", id, st, want)
	}
	if (rec != nil) != (want == Done) {
		t.Fatalf("Begin(%q) record = %v with state %v", id, rec, st)
	}
	return rec
}

func finish(t *testing.T, j *Journal, id, payload string) {
	t.Helper()
	if err := j.Finish(id, Record{Payload: json.RawMessage(payload)}); err != nil {
		t.Fatalf("Finish(%q): %v", id, err)
	}
}

func ids(recs []Record) []string {
	var out []string
	for _, r := range recs {
		out = append(out, r.ID)
	}
	return out
}

func unacked(t *testing.T, j *Journal) []string {
	t.Helper()
	recs, err := j.Unacked()
	if err != nil {
		t.Fatalf("Unacked: %v", err)
	}
	return ids(recs)
}

func TestLifecycle(t *testing.T) {
	j := open(t, t.TempDir())
	begin(t, j, "exec-1", New)
	begin(t, j, "exec-1", Running)
	if got := unacked(t, j); len(got) != 0 {
		t.Fatalf("Unacked before Finish = %v", got)
	}
	at := time.Date(2030, 1, 2, 3, 4, 5, 6, time.UTC)
	if err := j.Finish("exec-1", Record{ID: "exec-1", Payload: json.RawMessage(`{"exit":3}`), FinishedAt: at}); err != nil {
		t.Fatal(err)
	}
	rec := begin(t, j, "exec-1", Done)
	if rec.ID != "exec-1" || string(rec.Payload) != `{"exit":3}` || !rec.FinishedAt.Equal(at) {
		t.Fatalf("recorded %+v", rec)
	}
	recs, err := j.Unacked()
	if err != nil || len(recs) != 1 || string(recs[0].Payload) != `{"exit":3}` {
		t.Fatalf("Unacked = %+v, %v", recs, err)
	}
	if err := j.Ack("exec-1"); err != nil {
		t.Fatal(err)
	}
	if err := j.Ack("exec-1"); err != nil {
		t.Fatalf("second Ack: %v", err)
	}
	if got := unacked(t, j); len(got) != 0 {
		t.Fatalf("Unacked after Ack = %v", got)
	}
	begin(t, j, "exec-1", Done) // acked results still answer repeats
	if got := j.Interrupted(); len(got) != 0 {
		t.Fatalf("Interrupted = %v", got)
	}
}

func TestFinishDefaults(t *testing.T) {
	j := open(t, t.TempDir())
	fixed := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	j.now = func() time.Time { return fixed }
	begin(t, j, "a", New)
	if err := j.Finish("a", Record{}); err != nil {
		t.Fatal(err)
	}
	rec := begin(t, j, "a", Done)
	if rec.ID != "a" || !rec.FinishedAt.Equal(fixed) || string(rec.Payload) != "null" {
		t.Fatalf("record = %+v (payload %s)", rec, rec.Payload)
	}
}

func TestFileModes(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "journal")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	j := open(t, dir)
	begin(t, j, "a", New)
	finish(t, j, "a", `1`)
	if err := j.Ack("a"); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(dir)
	if err != nil || fi.Mode().Perm() != 0o700 {
		t.Fatalf("dir mode = %v, %v; want 0700", fi.Mode(), err)
	}
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
		info, _ := e.Info()
		if info.Mode().Perm() != 0o600 {
			t.Errorf("%s has mode %v, want 0600", e.Name(), info.Mode())
		}
	}
	// One log, whatever the number of commands.
	if want := []string{".lock", "journal.log"}; !slices.Equal(names, want) {
		t.Errorf("files = %v, want %v", names, want)
	}
}

func TestConcurrentBegin(t *testing.T) {
	j := open(t, t.TempDir())
	const ids, per = 8, 16
	var (
		mu     sync.Mutex
		counts = map[string]map[State]int{}
		wg     sync.WaitGroup
		start  = make(chan struct{})
	)
	for i := range ids {
		id := "id-" + string(rune('a'+i))
		counts[id] = map[State]int{}
		for range per {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				st, _, err := j.Begin(id)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				counts[id][st]++
				mu.Unlock()
			}()
		}
	}
	close(start)
	wg.Wait()
	for id, c := range counts {
		if c[New] != 1 || c[Running] != per-1 {
			t.Errorf("%s: states %v, want exactly one New and %d Running", id, c, per-1)
		}
	}
}

func TestConcurrentFinishOnce(t *testing.T) {
	j := open(t, t.TempDir())
	begin(t, j, "x", New)
	var wg sync.WaitGroup
	errs := make(chan error, 10)
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- j.Finish("x", Record{Payload: json.RawMessage([]byte{'0' + byte(i)})})
		}()
	}
	wg.Wait()
	close(errs)
	ok := 0
	for err := range errs {
		switch {
		case err == nil:
			ok++
		case !errors.Is(err, ErrAlreadyFinished):
			t.Errorf("unexpected error %v", err)
		}
	}
	if ok != 1 {
		t.Fatalf("%d Finish calls succeeded, want 1", ok)
	}
}

func TestRestart(t *testing.T) {
	dir := t.TempDir()
	j1, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	begin(t, j1, "running", New)
	begin(t, j1, "done", New)
	finish(t, j1, "done", `"d"`)
	begin(t, j1, "acked", New)
	finish(t, j1, "acked", `"a"`)
	if err := j1.Ack("acked"); err != nil {
		t.Fatal(err)
	}
	if got := j1.Interrupted(); len(got) != 0 {
		t.Fatalf("Interrupted in the first process = %v", got)
	}
	if err := j1.Close(); err != nil {
		t.Fatal(err)
	}

	j2 := open(t, dir)
	if got := j2.Interrupted(); !slices.Equal(got, []string{"running"}) {
		t.Fatalf("Interrupted after restart = %v, want [running]", got)
	}
	tests := []struct {
		id      string
		want    State
		payload string
	}{
		{"running", Interrupted, ""},
		{"done", Done, `"d"`},
		{"acked", Done, `"a"`},
		{"fresh", New, ""},
	}
	for _, tt := range tests {
		for range 2 { // repeats give the same answer
			rec := begin(t, j2, tt.id, tt.want)
			if tt.want == Done && string(rec.Payload) != tt.payload {
				t.Errorf("%s: payload %s, want %s", tt.id, rec.Payload, tt.payload)
			}
			if tt.want == New {
				tt.want = Running
			}
		}
	}
	if got := unacked(t, j2); !slices.Equal(got, []string{"done"}) {
		t.Fatalf("Unacked after restart = %v, want [done]", got)
	}
	// The agent reports the interrupted id by recording a result for it.
	finish(t, j2, "running", `"unknown"`)
	if got := j2.Interrupted(); len(got) != 0 {
		t.Errorf("Interrupted after Finish = %v", got)
	}
	if got := unacked(t, j2); !slices.Equal(got, []string{"done", "running"}) {
		t.Errorf("Unacked = %v", got)
	}
	begin(t, j2, "running", Done)
}

func TestOpenIsExclusive(t *testing.T) {
	dir := t.TempDir()
	j1, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Open(dir); !errors.Is(err, ErrLocked) {
		t.Fatalf("second Open = %v, want ErrLocked", err)
	}
	j1.Close()
	j2, err := Open(dir)
	if err != nil {
		t.Fatalf("Open after Close: %v", err)
	}
	j2.Close()
}

func TestClosed(t *testing.T) {
	j, err := Open(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	begin(t, j, "a", New)
	j.Close()
	if _, _, err := j.Begin("b"); !errors.Is(err, ErrClosed) {
		t.Errorf("Begin after Close: %v", err)
	}
	if err := j.Finish("a", Record{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Finish after Close: %v", err)
	}
	if _, err := j.Unacked(); !errors.Is(err, ErrClosed) {
		t.Errorf("Unacked after Close: %v", err)
	}
	if err := j.GC(time.Hour); !errors.Is(err, ErrClosed) {
		t.Errorf("GC after Close: %v", err)
	}
}

// TestCrashHelperProcess is the agent process that dies in
// TestCrashBetweenBeginAndFinish.
func TestCrashHelperProcess(t *testing.T) {
	dir := os.Getenv("GANTRY_JOURNAL_CRASH_DIR")
	if dir == "" {
		t.Skip("helper process for TestCrashBetweenBeginAndFinish")
	}
	j, err := Open(dir)
	if err != nil {
		os.Exit(2)
	}
	if st, _, err := j.Begin("finished"); err != nil || st != New {
		os.Exit(3)
	}
	if err := j.Finish("finished", Record{Payload: json.RawMessage(`{"ok":true}`)}); err != nil {
		os.Exit(4)
	}
	if st, _, err := j.Begin("crashed"); err != nil || st != New {
		os.Exit(5)
	}
	os.Exit(7) // die while "crashed" runs, holding the lock, without Close
}

func TestCrashBetweenBeginAndFinish(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashHelperProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), "GANTRY_JOURNAL_CRASH_DIR="+dir)
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 7 {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	j := open(t, dir) // the dead process's lock is gone
	if got := j.Interrupted(); !slices.Equal(got, []string{"crashed"}) {
		t.Fatalf("Interrupted = %v, want [crashed]", got)
	}
	begin(t, j, "crashed", Interrupted)
	if rec := begin(t, j, "finished", Done); string(rec.Payload) != `{"ok":true}` {
		t.Fatalf("payload %s", rec.Payload)
	}
	if got := unacked(t, j); !slices.Equal(got, []string{"finished"}) {
		t.Fatalf("Unacked = %v", got)
	}
}

func TestCrashDuringFinishLeavesNoResult(t *testing.T) {
	dir := t.TempDir()
	j1, _ := Open(dir)
	begin(t, j1, "x", New)
	j1.Close()
	// A Finish of the older file-per-id layout that died after writing its
	// temporary file, before rename: Open removes the leftover.
	tmp := filepath.Join(dir, ".tmp-x-12345")
	if err := os.WriteFile(tmp, []byte(`{"id":"x","payl`), 0o600); err != nil {
		t.Fatal(err)
	}
	j2 := open(t, dir)
	if _, err := os.Stat(tmp); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leftover temp file not removed: %v", err)
	}
	begin(t, j2, "x", Interrupted)
	if got := unacked(t, j2); len(got) != 0 {
		t.Errorf("Unacked = %v", got)
	}
}

func TestCorruptOldResultIsInterrupted(t *testing.T) {
	dir := t.TempDir()
	// The older layout, with an unreadable result file.
	writeFiles(t, dir, map[string]string{
		"x.start": `{"id":"x","started_at":"2030-01-01T00:00:00Z","pid":1}`,
		"x.done":  "{garbage",
	})
	j2 := open(t, dir)
	begin(t, j2, "x", Interrupted)
	finish(t, j2, "x", `"unknown"`)
	if rec := begin(t, j2, "x", Done); string(rec.Payload) != `"unknown"` {
		t.Errorf("payload %s", rec.Payload)
	}
	checkFiles(t, dir)
}

func TestUnackedOrder(t *testing.T) {
	j := open(t, t.TempDir())
	base := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, f := range []struct {
		id  string
		off time.Duration
	}{{"c", 3}, {"a", 1}, {"b", 2}, {"e", 2}, {"d", 0}} {
		begin(t, j, f.id, New)
		if err := j.Finish(f.id, Record{Payload: json.RawMessage(`{}`), FinishedAt: base.Add(f.off * time.Second)}); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := unacked(t, j), []string{"d", "a", "b", "e", "c"}; !slices.Equal(got, want) {
		t.Fatalf("Unacked = %v, want %v", got, want)
	}
	for _, id := range []string{"b", "d"} {
		if err := j.Ack(id); err != nil {
			t.Fatal(err)
		}
	}
	if got, want := unacked(t, j), []string{"a", "e", "c"}; !slices.Equal(got, want) {
		t.Fatalf("Unacked after acks = %v, want %v", got, want)
	}
	// Acks survive a restart.
	j.Close()
	j2 := open(t, j.Dir())
	if got, want := unacked(t, j2), []string{"a", "e", "c"}; !slices.Equal(got, want) {
		t.Fatalf("Unacked after restart = %v, want %v", got, want)
	}
}

func TestGC(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	old := now.Add(-8 * 24 * time.Hour)
	recent := now.Add(-6 * 24 * time.Hour)

	j1, _ := Open(dir)
	j1.now = func() time.Time { return old }
	begin(t, j1, "old-interrupted", New) // started 8 days ago, never finished
	j1.now = func() time.Time { return recent }
	begin(t, j1, "recent-interrupted", New)
	j1.Close()

	j := open(t, dir)
	j.now = func() time.Time { return now }
	add := func(id string, at time.Time, ack bool) {
		begin(t, j, id, New)
		if err := j.Finish(id, Record{Payload: json.RawMessage(`1`), FinishedAt: at}); err != nil {
			t.Fatal(err)
		}
		if ack {
			if err := j.Ack(id); err != nil {
				t.Fatal(err)
			}
		}
	}
	add("old-acked", old, true)
	add("old-unacked", old, false)
	add("recent-acked", recent, true)
	begin(t, j, "running", New)

	if err := j.GC(7 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		id   string
		want State
	}{
		{"old-acked", New},       // forgotten
		{"old-interrupted", New}, // forgotten
		{"old-unacked", Done},    // the outbox is never dropped
		{"recent-acked", Done},   // too young
		{"recent-interrupted", Interrupted},
		{"running", Running},
	}
	data, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	for _, tt := range tests {
		if tt.want == New && strings.Contains(string(data), `"`+tt.id+`"`) {
			t.Errorf("%s still in the log after GC", tt.id)
		}
	}
	for _, tt := range tests {
		begin(t, j, tt.id, tt.want)
	}
	if got := unacked(t, j); !slices.Equal(got, []string{"old-unacked"}) {
		t.Errorf("Unacked = %v", got)
	}
	checkFiles(t, dir)
	// The compacted log is what a restart sees ("running" is then
	// interrupted).
	j.Close()
	j2 := open(t, dir)
	if got := unacked(t, j2); !slices.Equal(got, []string{"old-unacked"}) {
		t.Errorf("Unacked after restart = %v", got)
	}
	for _, tt := range tests {
		if tt.id == "running" || tt.want == New { // begun by j above
			tt.want = Interrupted
		}
		begin(t, j2, tt.id, tt.want)
	}
}

func TestHalfDoneOldGCIsStillDone(t *testing.T) {
	dir := t.TempDir()
	// The older layout, where GC died half-way: for x after removing
	// x.start (x.ack, holding the result, is left); for y, in the even
	// older form (an empty .ack beside .done), after removing y.start and
	// y.done: an ack without a result.
	writeFiles(t, dir, map[string]string{
		"x.ack": `{"id":"x","payload":1,"finished_at":"2020-01-01T00:00:00Z"}`,
		"y.ack": "",
	})
	j := open(t, dir)
	if got := j.Interrupted(); len(got) != 0 {
		t.Errorf("Interrupted = %v, want none", got)
	}
	begin(t, j, "x", Done)
	checkFiles(t, dir) // the orphan y.ack is gone too
	begin(t, j, "y", New)
	j.now = func() time.Time { return time.Now().Add(365 * 24 * time.Hour) }
	if err := j.GC(24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	begin(t, j, "x", New)
}

func TestInvalidIDs(t *testing.T) {
	parent := t.TempDir()
	dir := filepath.Join(parent, "j")
	j := open(t, dir)
	bad := []string{"", "a/b", "../escape", "..", ".", "a.b", "a b", "ä", "x\x00y", "/abs", strings.Repeat("a", 65), ".lock"}
	for _, id := range bad {
		if _, _, err := j.Begin(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Begin(%q) = %v, want ErrInvalidID", id, err)
		}
		if err := j.Finish(id, Record{}); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Finish(%q) = %v, want ErrInvalidID", id, err)
		}
		if err := j.Ack(id); !errors.Is(err, ErrInvalidID) {
			t.Errorf("Ack(%q) = %v, want ErrInvalidID", id, err)
		}
		if ValidID(id) {
			t.Errorf("ValidID(%q) = true", id)
		}
	}
	for _, id := range []string{"a", "A-b_9", strings.Repeat("z", 64)} {
		if !ValidID(id) {
			t.Errorf("ValidID(%q) = false", id)
		}
		begin(t, j, id, New)
	}
	if ents, _ := os.ReadDir(parent); len(ents) != 1 {
		t.Errorf("files created outside the journal: %v", ents)
	}
	checkFiles(t, dir)
}

func TestMisuse(t *testing.T) {
	j := open(t, t.TempDir())
	if err := j.Finish("never", Record{}); !errors.Is(err, ErrNotStarted) {
		t.Errorf("Finish of unbegun id = %v, want ErrNotStarted", err)
	}
	if err := j.Ack("never"); !errors.Is(err, ErrNotFinished) {
		t.Errorf("Ack of unknown id = %v, want ErrNotFinished", err)
	}
	begin(t, j, "a", New)
	if err := j.Ack("a"); !errors.Is(err, ErrNotFinished) {
		t.Errorf("Ack of running id = %v, want ErrNotFinished", err)
	}
	if err := j.Finish("a", Record{ID: "b"}); err == nil {
		t.Error("Finish with a record for another id succeeded")
	}
	if err := j.Finish("a", Record{Payload: json.RawMessage(`{not json`)}); err == nil {
		t.Error("Finish with an invalid payload succeeded")
	}
	begin(t, j, "a", Running) // failed Finish calls record nothing
	finish(t, j, "a", `true`)
	if err := j.Finish("a", Record{Payload: json.RawMessage(`false`)}); !errors.Is(err, ErrAlreadyFinished) {
		t.Errorf("second Finish = %v, want ErrAlreadyFinished", err)
	}
	if rec := begin(t, j, "a", Done); string(rec.Payload) != "true" {
		t.Errorf("payload %s, want the first result", rec.Payload)
	}
}

func TestStrayOldStartFileIsNeverRun(t *testing.T) {
	dir := t.TempDir()
	// A start file of the older layout, even an empty one (a crash before
	// its content was written): imported as started, so never run.
	writeFiles(t, dir, map[string]string{"stray.start": ""})
	j := open(t, dir)
	begin(t, j, "stray", Interrupted)
	begin(t, j, "stray", Interrupted)
	checkFiles(t, dir)
}

func TestStateString(t *testing.T) {
	for st, want := range map[State]string{New: "new", Running: "running", Done: "done", Interrupted: "interrupted", State(9): "State(9)"} {
		if st.String() != want {
			t.Errorf("%d.String() = %q, want %q", int(st), st.String(), want)
		}
	}
}

// writeFiles creates files (mode 0600) in dir.
func writeFiles(t *testing.T, dir string, files map[string]string) {
	t.Helper()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

// checkFiles fails unless dir holds exactly the lock and the log.
func checkFiles(t *testing.T, dir string) {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{".lock", logName}; !slices.Equal(names, want) {
		t.Errorf("files = %v, want %v", names, want)
	}
}

// logLines returns the offsets at which the log's lines start, and its size.
func logLines(t *testing.T, dir string) ([]int64, int64) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(dir, logName))
	if err != nil {
		t.Fatal(err)
	}
	var offs []int64
	for off := 0; off < len(data); {
		offs = append(offs, int64(off))
		i := strings.IndexByte(string(data[off:]), '\n')
		if i < 0 {
			break
		}
		off += i + 1
	}
	return offs, int64(len(data))
}

func TestNoFilesPerCommand(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	t0 := time.Now()
	for i := range 1000 {
		id := fmt.Sprintf("exec-%d", i)
		begin(t, j, id, New)
		finish(t, j, id, `{"exit":0,"stdout":"hello"}`)
		if err := j.Ack(id); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("1000 × Begin+Finish+Ack: %v", time.Since(t0))
	checkFiles(t, dir)
	j.Close()
	j2 := open(t, dir)
	begin(t, j2, "exec-999", Done)
	if got := unacked(t, j2); len(got) != 0 {
		t.Errorf("Unacked = %v", got)
	}
}

func TestTornTail(t *testing.T) {
	dir := t.TempDir()
	j1 := open(t, dir)
	begin(t, j1, "a", New)
	finish(t, j1, "a", `"a"`)
	begin(t, j1, "b", New)
	finish(t, j1, "b", `"b"`) // its done line is the last one
	j1.Close()
	offs, size := logLines(t, dir)
	lastLine := offs[len(offs)-1]

	for _, cut := range []int64{lastLine + 1, (lastLine + size) / 2, size - 1} {
		t.Run(fmt.Sprint(cut-lastLine), func(t *testing.T) {
			d := t.TempDir()
			data, _ := os.ReadFile(filepath.Join(dir, logName))
			writeFiles(t, d, map[string]string{logName: string(data[:cut])})
			j := open(t, d)
			// A torn done leaves its id Interrupted, never New.
			if got := j.Interrupted(); !slices.Equal(got, []string{"b"}) {
				t.Errorf("Interrupted = %v, want [b]", got)
			}
			begin(t, j, "b", Interrupted)
			if rec := begin(t, j, "a", Done); string(rec.Payload) != `"a"` {
				t.Errorf("payload of a = %s", rec.Payload)
			}
			// The torn part is gone: appends after it read back fine.
			finish(t, j, "b", `"unknown"`)
			begin(t, j, "c", New)
			j.Close()
			if _, size := logLines(t, d); size <= cut {
				t.Fatalf("log did not grow")
			}
			j2 := open(t, d)
			begin(t, j2, "b", Done)
			begin(t, j2, "c", Interrupted)
			if got := unacked(t, j2); !slices.Equal(got, []string{"a", "b"}) {
				t.Errorf("Unacked = %v", got)
			}
		})
	}

	// A torn start (its Begin never returned) may be forgotten; the
	// records before it are intact.
	d := t.TempDir()
	j := open(t, d)
	begin(t, j, "a", New)
	begin(t, j, "b", New)
	j.Close()
	_, size = logLines(t, d)
	data, _ := os.ReadFile(filepath.Join(d, logName))
	writeFiles(t, d, map[string]string{logName: string(data[:size-3])})
	j = open(t, d)
	if got := j.Interrupted(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Interrupted = %v, want [a]", got)
	}
	j.Close()

	// Zeros after the last record (a machine crash that extended the file
	// but lost the data) are a torn tail too.
	f, _ := os.OpenFile(filepath.Join(d, logName), os.O_WRONLY|os.O_APPEND, 0)
	f.Write(make([]byte, 100))
	f.Close()
	j = open(t, d)
	if got := j.Interrupted(); !slices.Equal(got, []string{"a"}) {
		t.Errorf("Interrupted = %v, want [a]", got)
	}
}

func TestCorruptMiddleRefusesToOpen(t *testing.T) {
	dir := t.TempDir()
	j1 := open(t, dir)
	for _, id := range []string{"a", "b", "c"} {
		begin(t, j1, id, New)
		finish(t, j1, id, `"x"`)
	}
	j1.Close()
	offs, _ := logLines(t, dir)
	path := filepath.Join(dir, logName)
	orig, _ := os.ReadFile(path)
	for name, damage := range map[string]func(b []byte){
		"byte":    func(b []byte) { b[offs[3]+12] ^= 0x20 },             // in b's start
		"newline": func(b []byte) { b[offs[4]-1] = 'x' },                // merges two lines
		"zeros":   func(b []byte) { copy(b[offs[2]:], "\x00\x00\x00") }, // a's done
	} {
		t.Run(name, func(t *testing.T) {
			b := slices.Clone(orig)
			damage(b)
			if err := os.WriteFile(path, b, 0o600); err != nil {
				t.Fatal(err)
			}
			for range 2 { // and it stays refused: nothing was cut off
				if j, err := Open(dir); !errors.Is(err, ErrCorrupt) {
					if err == nil {
						j.Close()
					}
					t.Fatalf("Open = %v, want ErrCorrupt", err)
				}
			}
			if after, _ := os.ReadFile(path); !slices.Equal(after, b) {
				t.Error("Open changed a corrupt log")
			}
		})
	}
	// A well-formed but inconsistent record is refused too.
	line, _ := encodeLine(logRec{Op: opDone, ID: "zz", Rec: &Record{ID: "zz"}})
	writeFiles(t, dir, map[string]string{logName: string(orig) + string(line)})
	if _, err := Open(dir); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("Open with a result without start = %v, want ErrCorrupt", err)
	}
}

func TestCompactionCrashSafety(t *testing.T) {
	dir := t.TempDir()
	now := time.Date(2030, 6, 1, 0, 0, 0, 0, time.UTC)
	j := open(t, dir)
	j.now = func() time.Time { return now.Add(-30 * 24 * time.Hour) }
	big := `"` + strings.Repeat("x", 10000) + `"`
	for i := range 200 {
		id := fmt.Sprintf("old-%d", i)
		begin(t, j, id, New)
		finish(t, j, id, big)
		if err := j.Ack(id); err != nil {
			t.Fatal(err)
		}
	}
	j.now = func() time.Time { return now }
	begin(t, j, "keep-unacked", New)
	finish(t, j, "keep-unacked", `"u"`)
	begin(t, j, "keep-acked", New)
	finish(t, j, "keep-acked", `"k"`)
	if err := j.Ack("keep-acked"); err != nil {
		t.Fatal(err)
	}
	begin(t, j, "keep-running", New)
	_, before := logLines(t, dir)
	if err := j.GC(7 * 24 * time.Hour); err != nil {
		t.Fatal(err)
	}
	_, after := logLines(t, dir)
	if after > before/100 {
		t.Errorf("log %d bytes after GC, %d before", after, before)
	}
	checkFiles(t, dir)
	// The Journal goes on appending to the new log.
	begin(t, j, "keep-unacked", Done)
	begin(t, j, "keep-running", Running)
	finish(t, j, "keep-running", `"r"`)
	begin(t, j, "old-3", New)
	j.Close()

	check := func(j *Journal) {
		t.Helper()
		begin(t, j, "old-7", New)
		begin(t, j, "old-3", Interrupted)
		if rec := begin(t, j, "keep-acked", Done); string(rec.Payload) != `"k"` {
			t.Errorf("payload %s", rec.Payload)
		}
		if got := unacked(t, j); !slices.Equal(got, []string{"keep-running", "keep-unacked"}) {
			t.Errorf("Unacked = %v", got)
		}
	}
	// A compaction that died before its rename left its temporary file:
	// the log is still whole, and the leftover goes.
	writeFiles(t, dir, map[string]string{compactName: "garbage"})
	j2, err := Open(dir)
	if err != nil {
		t.Fatal(err)
	}
	check(j2)
	checkFiles(t, dir)
	j2.Close()
}

func TestGCWhileFinishing(t *testing.T) {
	dir := t.TempDir()
	j := open(t, dir)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 100 {
				id := fmt.Sprintf("w%d-%d", w, i)
				if st, _, err := j.Begin(id); err != nil || st != New {
					t.Errorf("Begin(%s) = %v, %v", id, st, err)
					return
				}
				if err := j.Finish(id, Record{Payload: json.RawMessage(`1`)}); err != nil {
					t.Error(err)
					return
				}
				if i%2 == 0 {
					if err := j.Ack(id); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 20 {
			if err := j.GC(-time.Hour); err != nil { // forgets every acked result
				t.Error(err)
			}
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	if err := j.GC(-time.Hour); err != nil {
		t.Fatal(err)
	}
	want := len(unacked(t, j))
	if want != 200 {
		t.Errorf("%d unacked, want 200", want)
	}
	j.Close()
	j2 := open(t, dir)
	for w := range 4 {
		for i := range 100 {
			id := fmt.Sprintf("w%d-%d", w, i)
			if i%2 == 0 {
				begin(t, j2, id, New)
			} else {
				begin(t, j2, id, Done)
			}
		}
	}
}

func TestMigrateOldLayout(t *testing.T) {
	dir := t.TempDir()
	rec := func(id, payload, at string) string {
		return `{"id":"` + id + `","payload":` + payload + `,"finished_at":"` + at + `"}`
	}
	start := func(id, at string) string { return `{"id":"` + id + `","started_at":"` + at + `","pid":42}` }
	writeFiles(t, dir, map[string]string{
		"running.start":        start("running", "2030-01-01T00:00:02Z"),
		"done.start":           start("done", "2030-01-01T00:00:00Z"),
		"done.done":            rec("done", `{"exit":1}`, "2030-01-01T00:01:00Z"),
		"acked.start":          start("acked", "2030-01-01T00:00:00Z"),
		"acked.ack":            rec("acked", `"a"`, "2030-01-01T00:00:30Z"),
		"older-acked.start":    start("older-acked", "2030-01-01T00:00:00Z"),
		"older-acked.done":     rec("older-acked", `"o"`, "2030-01-01T00:00:40Z"),
		"older-acked.ack":      "",
		"corrupt.start":        start("corrupt", "2030-01-01T00:00:01Z"),
		"corrupt.done.corrupt": "{garb",
		"early.done":           rec("early", `"e"`, "2030-01-01T00:00:50Z"), // GC died after .start
		"orphan.ack":           "",
		".tmp-done-123":        "{",
		"not-ours.txt":         "keep me",
	})
	if err := os.Mkdir(filepath.Join(dir, "sub.start"), 0o700); err != nil {
		t.Fatal(err)
	}
	check := func(j *Journal) {
		t.Helper()
		if got := j.Interrupted(); !slices.Equal(got, []string{"corrupt", "running"}) {
			t.Errorf("Interrupted = %v", got)
		}
		if got := unacked(t, j); !slices.Equal(got, []string{"early", "done"}) {
			t.Errorf("Unacked = %v", got)
		}
		for id, payload := range map[string]string{"done": `{"exit":1}`, "acked": `"a"`, "older-acked": `"o"`, "early": `"e"`} {
			if rec := begin(t, j, id, Done); string(rec.Payload) != payload {
				t.Errorf("%s: payload %s, want %s", id, rec.Payload, payload)
			}
		}
		begin(t, j, "running", Interrupted)
		begin(t, j, "corrupt", Interrupted)
	}
	j := open(t, dir)
	check(j)
	ents, _ := os.ReadDir(dir)
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	if want := []string{".lock", logName, "not-ours.txt", "sub.start"}; !slices.Equal(names, want) {
		t.Errorf("files after import = %v, want %v", names, want)
	}
	begin(t, j, "orphan", New) // an ack without result means nothing
	j.Close()

	// An import that died before removing the old files: the log wins.
	writeFiles(t, dir, map[string]string{
		"done.done":   rec("done", `"other"`, "2030-01-01T00:01:00Z"),
		"fresh.start": start("fresh", "2030-01-01T00:00:03Z"),
	})
	j2 := open(t, dir)
	if rec := begin(t, j2, "done", Done); string(rec.Payload) != `{"exit":1}` {
		t.Errorf("payload %s", rec.Payload)
	}
	if got := j2.Interrupted(); !slices.Equal(got, []string{"orphan", "corrupt", "running", "fresh"}) {
		t.Errorf("Interrupted = %v", got)
	}
	if _, err := os.Stat(filepath.Join(dir, "done.done")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("done.done not removed")
	}
	j2.Close()
}
