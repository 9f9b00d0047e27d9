package cli

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/gantry-dev/gantry/api"
)

// failWeb22 makes web-22 fail with output on stderr.
func failWeb22(e *api.Execution) {
	if e.HostName == "web-22" {
		code := 2
		e.State, e.ExitCode, e.Stderr = api.ExecFailed, &code, "oops\n"
	}
}

func TestRunLiveOutputAndSummary(t *testing.T) {
	f := newFakeServer(t)
	f.finish = failWeb22
	r := f.gantry(t, nil, "run", "--selector", "role=web", "--", "echo", "hello")
	r.expect(t, 1)
	want := "web-1  | hello from web-1\n" +
		"web-22 | hello from web-22\n" +
		"web-22 ! oops\n" +
		"\n"
	if !strings.HasPrefix(r.stdout, want) {
		t.Errorf("live output:\n%s\nwant prefix:\n%s", r.stdout, want)
	}
	summary := strings.TrimPrefix(r.stdout, want)
	for _, w := range []string{"HOST", "STATE", "EXIT", "DURATION", "web-1   succeeded  0     1.2s", "web-22  failed     2     1.2s",
		"2 hosts: 1 succeeded, 1 failed (job j1: 'gantry jobs show j1')\n"} {
		if !strings.Contains(summary, w) {
			t.Errorf("summary lacks %q:\n%s", w, summary)
		}
	}
	if r.stderr != "" {
		t.Errorf("stderr: %q", r.stderr)
	}
	var spec api.JobSpec
	_ = json.Unmarshal([]byte(f.body(0)), &spec)
	if spec.Script != "echo hello" || spec.Selector != "role=web" {
		t.Errorf("job spec %+v", spec)
	}

	f.finish = nil
	f.gantry(t, nil, "run", "--selector", "role=web", "--", "true").expect(t, 0, "2 hosts: 2 succeeded (job j2: 'gantry jobs show j2')\n")
}

func TestRunBuffersSplitLines(t *testing.T) {
	f := newFakeServer(t)
	f.finish = func(e *api.Execution) { // stored output = the streamed chunks
		switch e.HostName {
		case "web-1":
			e.Stdout, e.Stderr = "hello\nworld\r\n\n", "e1\ne2\n"
		case "web-22":
			e.Stdout = "partial"
		}
	}
	f.streams = func(j *fakeJob) []fakeStream {
		return []fakeStream{{events: sequenced(
			outputEvent("web-1", "stdout", "hel"),
			outputEvent("web-22", "stdout", "par"),
			outputEvent("web-1", "stderr", "e1\ne"),
			outputEvent("web-1", "stdout", "lo\nwor"),
			outputEvent("web-1", "stdout", "ld\r\n\n"),
			outputEvent("web-1", "stderr", "2\n"),
			outputEvent("web-22", "stdout", "tial"),
			doneEvent(j.final),
		)}}
	}
	r := f.gantry(t, nil, "run", "--selector", "role=web", "--", "x")
	r.expect(t, 0)
	want := "web-1  ! e1\n" +
		"web-1  | hello\n" +
		"web-1  | world\n" +
		"web-1  |\n" +
		"web-1  ! e2\n" +
		"web-22 | partial\n" + // flushed at the end, without its newline
		"\n"
	if !strings.HasPrefix(r.stdout, want) {
		t.Errorf("got:\n%s\nwant prefix:\n%s", r.stdout, want)
	}
}

// A chunk sent before the CLI subscribed (a fast host) is missed live; the
// host's whole output is then printed once, in order, from the stored job.
func TestRunPrintsOutputMissedBeforeSubscribing(t *testing.T) {
	f := newFakeServer(t)
	f.streams = func(j *fakeJob) []fakeStream {
		late := outputEvent("web-1", "stdout", "two\n")
		late.Offset = int64(len("one\n")) // "one\n" went out before we subscribed
		return []fakeStream{{events: []api.JobEvent{late, doneEvent(j.final)}}}
	}
	f.finish = func(e *api.Execution) {
		if e.HostName == "web-1" {
			e.Stdout = "one\ntwo\n"
		}
	}
	r := f.gantry(t, nil, "run", "--selector", "role=web", "--", "x")
	r.expect(t, 0, "web-1  | one\nweb-1  | two\n")
	if n := strings.Count(r.stdout, "| two"); n != 1 {
		t.Errorf("\"two\" printed %d times:\n%s", n, r.stdout)
	}
}

func TestRunJSON(t *testing.T) {
	f := newFakeServer(t)
	f.finish = failWeb22
	r := f.gantry(t, nil, "run", "-o", "json", "--selector", "role=web", "--", "uptime")
	r.expect(t, 1)
	var job api.Job
	if err := json.Unmarshal([]byte(r.stdout), &job); err != nil {
		t.Fatalf("stdout is not one JSON job: %v\n%s", err, r.stdout)
	}
	if job.State != api.JobFinished || len(job.Executions) != 2 || job.Executions[1].Stderr != "oops\n" {
		t.Errorf("job %+v", job)
	}
	if strings.Contains(r.stdout, " | ") {
		t.Errorf("JSON mode printed live output")
	}
}

func TestRunNoWait(t *testing.T) {
	f := newFakeServer(t)
	r := f.gantry(t, nil, "run", "--no-wait", "--selector", "role=db", "--", "uptime")
	r.expect(t, 0)
	if r.stdout != "j1\n" {
		t.Errorf("stdout %q, want the job id", r.stdout)
	}
	if f.job("j1").conns != 0 {
		t.Errorf("--no-wait followed the job")
	}
}

func TestRunNoMatchingHosts(t *testing.T) {
	f := newFakeServer(t)
	// The server refuses a job without hosts (422)...
	r := f.gantry(t, nil, "run", "--selector", "role=nothing", "--", "uptime")
	r.expect(t, 1, `Error: no host matches the selector "role=nothing"`)
	if strings.Contains(r.stderr, "--help") {
		t.Errorf("no matching host is not a usage error")
	}
	// ...or, failing that, creates one: the CLI reports it the same way.
	f.mu.Lock()
	f.hosts = nil
	f.mu.Unlock()
	f.gantry(t, nil, "run", "--selector", "", "--", "uptime").expect(t, 1, "no hosts are enrolled")
}

func TestRunAllHostsAndSpec(t *testing.T) {
	f := newFakeServer(t)
	script := writeFile(t, "s.sh", "#!/bin/sh\nuptime\n")
	r := f.gantry(t, nil, "run", "--selector", "", "--script", script, "--concurrency", "2", "--timeout", "1500ms", "--user", "deploy")
	r.expect(t, 0, "3 hosts: 3 succeeded", "db-1   | hello from db-1")
	var spec api.JobSpec
	_ = json.Unmarshal([]byte(f.body(0)), &spec)
	want := api.JobSpec{Selector: "", Script: "#!/bin/sh\nuptime\n", Concurrency: 2, TimeoutSeconds: 2, User: "deploy"}
	if spec != want {
		t.Errorf("spec %+v, want %+v", spec, want)
	}
	if !strings.Contains(f.body(0), `"selector":""`) {
		t.Errorf("empty selector must be sent explicitly: %s", f.body(0))
	}
}

func TestRunUsageErrors(t *testing.T) {
	f := newFakeServer(t)
	big := strings.Repeat("x", 300<<10)
	bigFile := writeFile(t, "big.sh", big)
	script := writeFile(t, "s.sh", "uptime")
	cases := []struct {
		name  string
		args  []string
		wants []string
	}{
		{"no selector", []string{"--", "uptime"}, []string{"--selector is required", "--selector ''"}},
		{"no script", []string{"--selector", "a=b"}, []string{"missing script"}},
		{"both scripts", []string{"--selector", "a=b", "--script", script, "--", "uptime"}, []string{"not both"}},
		{"words before dash", []string{"--selector", "a=b", "uptime"}, []string{`unexpected argument "uptime"`, "put the script after --"}},
		{"empty script", []string{"--selector", "a=b", "--", " "}, []string{"the script is empty"}},
		{"bad timeout", []string{"--selector", "a=b", "--timeout", "5", "--", "x"}, []string{`invalid argument "5" for "--timeout" flag`}},
		{"negative timeout", []string{"--selector", "a=b", "--timeout", "-1s", "--", "x"}, []string{"invalid --timeout -1s"}},
		{"negative concurrency", []string{"--selector", "a=b", "--concurrency", "-1", "--", "x"}, []string{"invalid --concurrency -1"}},
		{"missing file", []string{"--selector", "a=b", "--script", "/nonexistent/x.sh"}, []string{"--script:", "no such file"}},
		{"oversized words", []string{"--selector", "a=b", "--", big}, []string{"300.0 KiB (307200 bytes)", "limit of 256.0 KiB (262144 bytes)"}},
		{"oversized file", []string{"--selector", "a=b", "--script", bigFile}, []string{"300.0 KiB (307200 bytes)", "262144 bytes"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.gantry(t, nil, append([]string{"run"}, tc.args...)...)
			r.expect(t, 2, append(tc.wants, "Run 'gantry run --help' for usage.")...)
		})
	}
	if n := f.requestCount(); n != 0 {
		t.Errorf("usage errors reached the server (%d requests)", n)
	}
	// Exactly at the limit is fine.
	f.gantry(t, nil, "run", "--selector", "role=db", "--", strings.Repeat("x", 256<<10)).expect(t, 0)
}

func TestRunReconnectsAndCatchesUp(t *testing.T) {
	f := newFakeServer(t)
	f.finish = func(e *api.Execution) {
		if e.HostName == "web-1" {
			e.Stdout = "hello from web-1\nsecond line\nthird"
		}
	}
	f.streams = func(j *fakeJob) []fakeStream {
		return []fakeStream{
			{events: []api.JobEvent{outputEvent("web-1", "stdout", "hello from web-1\nsec")}}, // server dies
			{status: 503},
			{events: []api.JobEvent{outputEvent("web-22", "stdout", "hello from web-22\n"), doneEvent(j.final)}},
		}
	}
	r := f.gantry(t, nil, "run", "--selector", "role=web", "--", "x")
	r.expect(t, 0, "reconnecting", "2 hosts: 2 succeeded")
	want := "web-1  | hello from web-1\n" +
		"web-22 | hello from web-22\n" +
		"web-1  | second line\n" +
		"web-1  | third\n\n"
	if !strings.HasPrefix(r.stdout, want) {
		t.Errorf("got:\n%s\nwant prefix:\n%s", r.stdout, want)
	}
	if n := f.job("j1").conns; n != 3 {
		t.Errorf("%d stream connections, want 3", n)
	}
}

func TestRunFallsBackToPolling(t *testing.T) {
	f := newFakeServer(t)
	f.streams = func(*fakeJob) []fakeStream { return []fakeStream{{status: 502}} }
	r := f.gantry(t, nil, "run", "--selector", "role=db", "--timeout", "100ms", "--", "x")
	r.expect(t, 0, "reconnecting", "polling", "db-1 | hello from db-1", "1 host: 1 succeeded")
	if j := f.job("j1"); j.gets == 0 || j.conns < 2 {
		t.Errorf("conns %d, gets %d", j.conns, j.gets)
	}
}

func TestRunStopsOnClientError(t *testing.T) {
	f := newFakeServer(t)
	f.streams = func(*fakeJob) []fakeStream { return []fakeStream{{status: 403}} }
	r := f.gantry(t, nil, "run", "--selector", "role=db", "--", "x")
	r.expect(t, 1, "following job j1", "gantry jobs show j1")
	if f.job("j1").conns != 1 {
		t.Errorf("retried a 403")
	}
}

func TestLinePrinter(t *testing.T) {
	var b strings.Builder
	p := newLinePrinter(&b, []api.Execution{{HostName: "a"}, {HostID: "long-id"}})
	p.write("a", "stdout", "x")
	p.write("a", "stdout", "")
	if b.Len() != 0 {
		t.Fatalf("printed a partial line: %q", b.String())
	}
	p.write("a", "stdout", "y\nz")
	if !p.flush() {
		t.Error("flush reports nothing written")
	}
	if want := "a       | xy\na       | z\n"; b.String() != want {
		t.Errorf("got %q, want %q", b.String(), want)
	}
	var nilPrinter *linePrinter
	nilPrinter.write("a", "stdout", "x\n")
	if nilPrinter.flush() {
		t.Error("nil printer wrote")
	}
}
