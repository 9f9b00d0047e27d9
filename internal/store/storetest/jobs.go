package storetest

import (
	"fmt"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var jobTests = []test{
	{"Jobs/CreateGet", testJobsCreateGet},
	{"Jobs/NotFound", testJobsNotFound},
	{"Jobs/CreateConflict", testJobsCreateConflict},
	{"Jobs/List", testJobsList},
	{"Jobs/Unfinished", testJobsUnfinished},
	{"Jobs/FinishIdempotent", testJobsFinishIdempotent},
	{"Executions/PartialUpdates", testExecPartialUpdates},
	{"Executions/FinalStatesAreFinal", testExecFinalStates},
	{"Executions/OrderWithinBatch", testExecOrderWithinBatch},
	{"Executions/UnknownIgnored", testExecUnknownIgnored},
	{"Executions/EmptyStateRejected", testExecEmptyStateRejected},
	{"Executions/OutputMadeValidText", testExecOutputText},
	{"Executions/Batch10000", func(t *testing.T, s store.Store) {
		d := TimeUpdateExecutions(t, s, 10000)
		// A figure for the log, never an assertion: timings belong in bench/.
		t.Logf("UpdateExecutions of 10000 rows: %v", d)
	}},
}

// job returns a running job created at t0+d.
func job(id string, d time.Duration) api.Job {
	return api.Job{
		ID: id, Kind: api.JobKindExec, Selector: "role=web", Script: "#!/bin/sh\necho 'hi'\n", Concurrency: 2, TimeoutSeconds: 600,
		User: "deploy", ScheduleID: "sched-1", State: api.JobRunning, CreatedAt: at(d),
	}
}

// execution returns a pending execution of job jobID on host.
func execution(id, jobID, host string) api.Execution {
	return api.Execution{ID: id, JobID: jobID, HostID: "id-" + host, HostName: host, State: api.ExecPending}
}

// utcExec is what a store returns for e.
func utcExec(e api.Execution) api.Execution {
	for _, p := range []**time.Time{&e.DispatchedAt, &e.StartedAt, &e.FinishedAt} {
		if *p != nil {
			*p = ptr(utc(**p))
		}
	}
	return e
}

// createJob stores a job with one pending execution per host, named
// jobID+"-"+host.
func createJob(t *testing.T, s store.Store, j api.Job, hosts ...string) []api.Execution {
	t.Helper()
	var es []api.Execution
	for _, h := range hosts {
		es = append(es, execution(j.ID+"-"+h, j.ID, h))
	}
	ok(t, s.CreateJob(t.Context(), j, es), "CreateJob %s", j.ID)
	return es
}

// getExec returns an execution or fails the test.
func getExec(t *testing.T, s store.Store, id string) api.Execution {
	t.Helper()
	e, err := s.GetExecution(t.Context(), id)
	ok(t, err, "GetExecution %s", id)
	return e
}

// TimeUpdateExecutions creates n executions and returns how long one
// UpdateExecutions call takes to move all of them to succeeded with output.
// It fails the test unless every update was applied.
func TimeUpdateExecutions(t *testing.T, s store.Store, n int) time.Duration {
	t.Helper()
	ctx := t.Context()
	const perJob = 500
	var ups []store.ExecUpdate
	for j := 0; j*perJob < n; j++ {
		jb := job(fmt.Sprintf("job%03d", j), time.Duration(j)*time.Second)
		var es []api.Execution
		for i := j * perJob; i < min(n, (j+1)*perJob); i++ {
			e := execution(fmt.Sprintf("e%06d", i), jb.ID, fmt.Sprintf("host%06d", i))
			es = append(es, e)
			ups = append(ups, store.ExecUpdate{ID: e.ID, State: api.ExecSucceeded, ExitCode: ptr(0),
				Stdout: ptr("ok\n"), FinishedAt: ptr(at(time.Hour))})
		}
		ok(t, s.CreateJob(ctx, jb, es), "CreateJob")
	}
	start := time.Now()
	ok(t, s.UpdateExecutions(ctx, ups), "UpdateExecutions")
	d := time.Since(start)
	jobs, err := s.ListJobs(ctx, 0)
	ok(t, err, "ListJobs")
	total := 0
	for _, j := range jobs {
		total += j.Counts[api.ExecSucceeded]
		if len(j.Counts) != 1 {
			t.Fatalf("job %s counts %v after updating everything to succeeded", j.ID, j.Counts)
		}
	}
	if total != n {
		t.Fatalf("%d executions succeeded, want %d", total, n)
	}
	return d
}

func testJobsCreateGet(t *testing.T, s store.Store) {
	ctx := t.Context()
	j := job("j1", 0)
	j.State = "" // defaults to running
	// IDs in the opposite order of host names, which sort by bytes.
	full := api.Execution{
		ID: "e3", JobID: "other-job-id-is-overwritten", HostID: "id-a", HostName: "alpha", State: api.ExecFailed,
		ExitCode: ptr(3), Error: "boom", Stdout: "out\n", Stderr: "err\n", StdoutTruncated: true,
		DispatchedAt: ptr(at(time.Second)), StartedAt: ptr(at(2 * time.Second)), FinishedAt: ptr(at(3 * time.Second)),
	}
	zero := execution("e1", "j1", "zulu")
	zero.ExitCode = ptr(0)
	noState := execution("e2", "j1", "Mike")
	noState.State = ""
	ok(t, s.CreateJob(ctx, j, []api.Execution{zero, full, noState}), "CreateJob")

	got, err := s.GetJob(ctx, "j1")
	ok(t, err, "GetJob")
	full.JobID, noState.State = "j1", api.ExecPending
	want := job("j1", 0)
	want.CreatedAt = utc(want.CreatedAt)
	want.Counts = map[string]int{api.ExecFailed: 1, api.ExecPending: 2}
	want.Executions = []api.Execution{noState, utcExec(full), zero}
	same(t, got, want, "GetJob")
	same(t, getExec(t, s, "e3"), utcExec(full), "GetExecution")
	same(t, getExec(t, s, "e1"), zero, "GetExecution with exit code 0")

	ok(t, s.CreateJob(ctx, job("j2", time.Second), nil), "CreateJob without executions")
	got, err = s.GetJob(ctx, "j2")
	ok(t, err, "GetJob j2")
	if len(got.Executions) != 0 || got.FinishedAt != nil {
		t.Fatalf("job without executions: %+v", got)
	}

	// A job of another kind keeps its executions' payloads and results,
	// and is not listed with the scripts.
	dj := job("d1-b1", 2*time.Second)
	dj.Kind = api.JobKindDeploy
	dx := execution("d1-h1", "d1-b1", "h1")
	dx.Payload = []byte(`{"revision":"r-1"}`)
	ok(t, s.CreateJob(ctx, dj, []api.Execution{dx}), "CreateJob of kind deploy")
	ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{{ID: "d1-h1", State: api.ExecSucceeded, Result: []byte(`{"succeeded":true}`)}}), "UpdateExecutions with a result")
	gotD, err := s.GetJob(ctx, "d1-b1")
	ok(t, err, "GetJob d1-b1")
	if gotD.Kind != api.JobKindDeploy || string(gotD.Executions[0].Payload) != `{"revision":"r-1"}` || string(gotD.Executions[0].Result) != `{"succeeded":true}` {
		t.Fatalf("deploy job round trip: kind %q payload %s result %s", gotD.Kind, gotD.Executions[0].Payload, gotD.Executions[0].Result)
	}
	listed, err := s.ListJobs(ctx, 0)
	ok(t, err, "ListJobs")
	for _, l := range listed {
		if l.Kind != api.JobKindExec {
			t.Fatalf("ListJobs lists job %s of kind %s", l.ID, l.Kind)
		}
	}
}

func testJobsNotFound(t *testing.T, s store.Store) {
	ctx := t.Context()
	createJob(t, s, job("j1", 0), "a")
	_, err := s.GetJob(ctx, "nope")
	isErr(t, err, store.ErrNotFound, "GetJob")
	_, err = s.GetExecution(ctx, "nope")
	isErr(t, err, store.ErrNotFound, "GetExecution")
	isErr(t, s.FinishJob(ctx, "nope", t0), store.ErrNotFound, "FinishJob")
}

func testJobsCreateConflict(t *testing.T, s store.Store) {
	ctx := t.Context()
	createJob(t, s, job("j1", 0), "a", "b")
	isErr(t, s.CreateJob(ctx, job("j1", time.Second), nil), store.ErrConflict, "CreateJob with a duplicate id")
	// The second execution collides: nothing of j2 may remain.
	es := []api.Execution{execution("j2-a", "j2", "a"), execution("j1-b", "j2", "b")}
	isErr(t, s.CreateJob(ctx, job("j2", time.Second), es), store.ErrConflict, "CreateJob with a duplicate execution")
	_, err := s.GetJob(ctx, "j2")
	isErr(t, err, store.ErrNotFound, "GetJob of a job whose creation failed")
	_, err = s.GetExecution(ctx, "j2-a")
	isErr(t, err, store.ErrNotFound, "GetExecution of a job whose creation failed")
	if e := getExec(t, s, "j1-b"); e.JobID != "j1" {
		t.Fatalf("existing execution moved to job %s", e.JobID)
	}
}

func testJobsList(t *testing.T, s store.Store) {
	ctx := t.Context()
	jobs, err := s.ListJobs(ctx, 10)
	ok(t, err, "ListJobs on an empty store")
	if len(jobs) != 0 {
		t.Fatalf("ListJobs on an empty store = %d jobs", len(jobs))
	}
	// Created out of order; j3 has no executions.
	createJob(t, s, job("j2", 2*time.Second), "a", "b", "c")
	createJob(t, s, job("j4", 4*time.Second), "a", "b")
	createJob(t, s, job("j1", 1*time.Second), "a")
	createJob(t, s, job("j3", 3*time.Second))
	createJob(t, s, job("j5", 5*time.Second), "a", "b", "c", "d")
	ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{
		{ID: "j5-a", State: api.ExecRunning, Stdout: ptr(strings.Repeat("x", 1<<16))},
		{ID: "j5-b", State: api.ExecSucceeded, ExitCode: ptr(0)},
		{ID: "j5-c", State: api.ExecFailed, ExitCode: ptr(1)},
		{ID: "j4-a", State: api.ExecSucceeded, ExitCode: ptr(0)},
		{ID: "j4-b", State: api.ExecSucceeded, ExitCode: ptr(0)},
	}), "UpdateExecutions")
	ok(t, s.FinishJob(ctx, "j4", at(time.Hour)), "FinishJob")

	wantCounts := map[string]map[string]int{
		"j5": {api.ExecRunning: 1, api.ExecSucceeded: 1, api.ExecFailed: 1, api.ExecPending: 1},
		"j4": {api.ExecSucceeded: 2},
		"j3": {},
		"j2": {api.ExecPending: 3},
		"j1": {api.ExecPending: 1},
	}
	for _, tc := range []struct {
		limit int
		want  string
	}{
		{3, "j5 j4 j3"},
		{1, "j5"},
		{0, "j5 j4 j3 j2 j1"},
		{100, "j5 j4 j3 j2 j1"},
	} {
		t.Run(fmt.Sprint("limit=", tc.limit), func(t *testing.T) {
			jobs, err := s.ListJobs(ctx, tc.limit)
			ok(t, err, "ListJobs")
			var ids []string
			for _, j := range jobs {
				ids = append(ids, j.ID)
				same(t, j.Counts, wantCounts[j.ID], "Counts of %s", j.ID)
				if j.Executions != nil {
					t.Fatalf("ListJobs returned executions of %s", j.ID)
				}
			}
			if got := strings.Join(ids, " "); got != tc.want {
				t.Fatalf("ListJobs(%d) = %s, want %s", tc.limit, got, tc.want)
			}
		})
	}
	jobs, err = s.ListJobs(ctx, 2)
	ok(t, err, "ListJobs")
	want := job("j4", 4*time.Second)
	want.CreatedAt, want.State, want.FinishedAt = utc(want.CreatedAt), api.JobFinished, ptr(utc(at(time.Hour)))
	want.Counts = wantCounts["j4"]
	same(t, jobs[1], want, "listed job")
}

func testJobsUnfinished(t *testing.T, s store.Store) {
	ctx := t.Context()
	jobs, err := s.ListUnfinishedJobs(ctx)
	ok(t, err, "ListUnfinishedJobs on an empty store")
	if len(jobs) != 0 {
		t.Fatalf("ListUnfinishedJobs on an empty store = %d jobs", len(jobs))
	}
	createJob(t, s, job("j3", 3*time.Second), "zed", "amy")
	ok(t, s.CreateJob(ctx, job("j1", 1*time.Second), []api.Execution{ // ids not in host order
		execution("j1-cy", "j1", "amy"), execution("j1-amy", "j1", "bob"), execution("j1-bob", "j1", "cy"),
	}), "CreateJob j1")
	createJob(t, s, job("j2", 2*time.Second), "amy")
	createJob(t, s, job("j0", 0))
	ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{
		{ID: "j1-bob", State: api.ExecSucceeded, ExitCode: ptr(0), Stdout: ptr("done\n")},
	}), "UpdateExecutions")
	ok(t, s.FinishJob(ctx, "j2", at(time.Minute)), "FinishJob")

	jobs, err = s.ListUnfinishedJobs(ctx)
	ok(t, err, "ListUnfinishedJobs")
	var got []string
	for _, j := range jobs {
		got = append(got, j.ID+"["+execIDs(j.Executions)+"]")
		if j.State != api.JobRunning {
			t.Errorf("unfinished job %s has state %q", j.ID, j.State)
		}
	}
	want := "j0[] j1[amy=j1-cy bob=j1-amy cy=j1-bob] j3[amy=j3-amy zed=j3-zed]"
	if s := strings.Join(got, " "); s != want {
		t.Fatalf("ListUnfinishedJobs = %s, want %s", s, want)
	}
	if e := jobs[1].Executions[2]; e.Stdout != "done\n" || e.State != api.ExecSucceeded || e.ExitCode == nil || *e.ExitCode != 0 {
		t.Fatalf("execution of an unfinished job: %+v", e)
	}
	same(t, jobs[1].Counts, map[string]int{api.ExecPending: 2, api.ExecSucceeded: 1}, "Counts")

	for _, id := range []string{"j0", "j1", "j3"} {
		ok(t, s.FinishJob(ctx, id, at(time.Hour)), "FinishJob %s", id)
	}
	jobs, err = s.ListUnfinishedJobs(ctx)
	ok(t, err, "ListUnfinishedJobs")
	if len(jobs) != 0 {
		t.Fatalf("ListUnfinishedJobs after finishing all = %d jobs", len(jobs))
	}
}

func testJobsFinishIdempotent(t *testing.T, s store.Store) {
	ctx := t.Context()
	createJob(t, s, job("j1", 0), "a")
	ok(t, s.FinishJob(ctx, "j1", at(time.Minute)), "FinishJob")
	ok(t, s.FinishJob(ctx, "j1", at(time.Hour)), "FinishJob again")
	j, err := s.GetJob(ctx, "j1")
	ok(t, err, "GetJob")
	if j.State != api.JobFinished || j.FinishedAt == nil || !j.FinishedAt.Equal(at(time.Minute)) {
		t.Fatalf("after finishing twice: state %q finished at %v, want %q at %v",
			j.State, j.FinishedAt, api.JobFinished, at(time.Minute))
	}
}

func testExecPartialUpdates(t *testing.T, s store.Store) {
	ctx := t.Context()
	createJob(t, s, job("j", 0), "a", "b")
	want := execution("j-a", "j", "a")
	steps := []struct {
		name string
		up   store.ExecUpdate
		want func(e *api.Execution)
	}{
		{"dispatch", store.ExecUpdate{State: api.ExecDispatched, DispatchedAt: ptr(at(time.Second))},
			func(e *api.Execution) { e.State, e.DispatchedAt = api.ExecDispatched, ptr(utc(at(time.Second))) }},
		{"start with output", store.ExecUpdate{State: api.ExecRunning, StartedAt: ptr(at(2 * time.Second)),
			Stdout: ptr("partial"), Stderr: ptr("warn"), StdoutTruncated: true, Error: "transient"},
			func(e *api.Execution) {
				e.State, e.StartedAt, e.Stdout, e.Stderr = api.ExecRunning, ptr(utc(at(2*time.Second))), "partial", "warn"
				e.StdoutTruncated, e.Error = true, "transient"
			}},
		{"state only keeps every field", store.ExecUpdate{State: api.ExecRunning},
			func(e *api.Execution) {}},
		{"empty output replaces, false flag keeps", store.ExecUpdate{State: api.ExecRunning, Stdout: ptr(""),
			StderrTruncated: true},
			func(e *api.Execution) { e.Stdout, e.StderrTruncated = "", true }},
		{"back to dispatched (not final)", store.ExecUpdate{State: api.ExecDispatched},
			func(e *api.Execution) { e.State = api.ExecDispatched }},
		{"finish", store.ExecUpdate{State: api.ExecFailed, ExitCode: ptr(0), FinishedAt: ptr(at(time.Minute)),
			Error: "exit 0 but killed"},
			func(e *api.Execution) {
				e.State, e.ExitCode, e.FinishedAt = api.ExecFailed, ptr(0), ptr(utc(at(time.Minute)))
				e.Error = "exit 0 but killed"
			}},
	}
	for _, st := range steps {
		st.up.ID = "j-a"
		ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{st.up}), "UpdateExecutions %s", st.name)
		st.want(&want)
		same(t, getExec(t, s, "j-a"), want, "after %s", st.name)
	}
	same(t, getExec(t, s, "j-b"), execution("j-b", "j", "b"), "untouched execution")
}

func testExecFinalStates(t *testing.T, s store.Store) {
	ctx := t.Context()
	all := []string{api.ExecPending, api.ExecDispatched, api.ExecRunning, api.ExecSucceeded, api.ExecFailed,
		api.ExecTimedOut, api.ExecOffline, api.ExecUnknown}
	for _, final := range all {
		if !api.ExecDone(final) {
			continue
		}
		t.Run(final, func(t *testing.T) {
			createJob(t, s, job("j-"+final, 0), "h")
			id := "j-" + final + "-h"
			ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{{ID: id, State: final, ExitCode: ptr(7),
				Stdout: ptr("final"), FinishedAt: ptr(at(time.Minute))}}), "UpdateExecutions to %s", final)
			want := getExec(t, s, id)
			if want.State != final {
				t.Fatalf("state = %q, want %q", want.State, final)
			}
			for _, next := range all {
				up := store.ExecUpdate{ID: id, State: next, ExitCode: ptr(1), Error: "late", Stdout: ptr("late"),
					Stderr: ptr("late"), StdoutTruncated: true, StderrTruncated: true, DispatchedAt: ptr(at(time.Hour)),
					StartedAt: ptr(at(time.Hour)), FinishedAt: ptr(at(time.Hour))}
				ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{up, up}), "UpdateExecutions %s -> %s", final, next)
				same(t, getExec(t, s, id), want, "%s after an update to %s", final, next)
			}
		})
	}
}

func testExecOrderWithinBatch(t *testing.T, s store.Store) {
	ctx := t.Context()
	createJob(t, s, job("j", 0), "a", "b", "c")
	ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{
		{ID: "j-c", State: api.ExecRunning},
		{ID: "j-a", State: api.ExecDispatched},
		{ID: "j-c", State: api.ExecTimedOut},
		{ID: "j-a", State: api.ExecRunning, Stdout: ptr("1")},
		{ID: "j-b", State: api.ExecRunning},
		{ID: "j-a", State: api.ExecSucceeded, ExitCode: ptr(0)},
		{ID: "j-c", State: api.ExecRunning, Stdout: ptr("too late")},
		{ID: "j-a", State: api.ExecFailed, ExitCode: ptr(1)},
		{ID: "j-b", State: api.ExecDispatched},
	}), "UpdateExecutions")
	for id, want := range map[string]string{"j-a": api.ExecSucceeded, "j-b": api.ExecDispatched, "j-c": api.ExecTimedOut} {
		e := getExec(t, s, id)
		if e.State != want {
			t.Errorf("%s: state %q, want %q", id, e.State, want)
		}
	}
	if e := getExec(t, s, "j-a"); e.Stdout != "1" || e.ExitCode == nil || *e.ExitCode != 0 {
		t.Errorf("j-a: stdout %q exit %v, want \"1\" and 0", e.Stdout, e.ExitCode)
	}
	if e := getExec(t, s, "j-c"); e.Stdout != "" {
		t.Errorf("j-c: stdout %q written after a final state", e.Stdout)
	}

	// A long batch, interleaved: each execution ends with its last update.
	hosts := []string{"h0", "h1", "h2", "h3", "h4", "h5", "h6", "h7", "h8", "h9"}
	createJob(t, s, job("big", time.Second), hosts...)
	var ups []store.ExecUpdate
	for k := range 10 {
		for i := len(hosts) - 1; i >= 0; i-- {
			state := api.ExecDispatched
			if (k+i)%2 == 1 {
				state = api.ExecRunning
			}
			ups = append(ups, store.ExecUpdate{ID: "big-" + hosts[i], State: state, Stdout: ptr(fmt.Sprint(k))})
		}
	}
	ok(t, s.UpdateExecutions(ctx, ups), "UpdateExecutions")
	for i, h := range hosts {
		e := getExec(t, s, "big-"+h)
		wantState := api.ExecDispatched
		if (9+i)%2 == 1 {
			wantState = api.ExecRunning
		}
		if e.Stdout != "9" || e.State != wantState {
			t.Errorf("%s: stdout %q state %q, want the last update's \"9\" %q", e.ID, e.Stdout, e.State, wantState)
		}
	}
}

func testExecUnknownIgnored(t *testing.T, s store.Store) {
	ctx := t.Context()
	createJob(t, s, job("j", 0), "a")
	ok(t, s.UpdateExecutions(ctx, nil), "UpdateExecutions(nil)")
	ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{
		{ID: "nope", State: api.ExecRunning},
		{ID: "j-a", State: api.ExecRunning},
	}), "UpdateExecutions with an unknown execution")
	if e := getExec(t, s, "j-a"); e.State != api.ExecRunning {
		t.Fatalf("state %q, want running", e.State)
	}
	_, err := s.GetExecution(ctx, "nope")
	isErr(t, err, store.ErrNotFound, "UpdateExecutions must not create executions")
}

func testExecEmptyStateRejected(t *testing.T, s store.Store) {
	ctx := t.Context()
	createJob(t, s, job("j", 0), "a", "b")
	err := s.UpdateExecutions(ctx, []store.ExecUpdate{
		{ID: "j-a", State: api.ExecRunning},
		{ID: "j-b", State: ""},
	})
	if err == nil {
		t.Fatal("UpdateExecutions with an empty state succeeded")
	}
	for _, id := range []string{"j-a", "j-b"} {
		if e := getExec(t, s, id); e.State != api.ExecPending {
			t.Fatalf("%s: state %q after a rejected batch, want pending", id, e.State)
		}
	}
}

func testExecOutputText(t *testing.T, s store.Store) {
	ctx := t.Context()
	createJob(t, s, job("j", 0), "a")
	raw := "ok \x00 then \xff\xfe bytes ä"
	ok(t, s.UpdateExecutions(ctx, []store.ExecUpdate{{ID: "j-a", State: api.ExecFailed, ExitCode: ptr(1),
		Stdout: ptr(raw), Stderr: ptr(raw), Error: raw}}), "UpdateExecutions with binary output")
	e := getExec(t, s, "j-a")
	for name, v := range map[string]string{"stdout": e.Stdout, "stderr": e.Stderr, "error": e.Error} {
		if !utf8.ValidString(v) || strings.ContainsRune(v, 0) || !strings.HasPrefix(v, "ok ") ||
			!strings.HasSuffix(v, " bytes ä") {
			t.Errorf("%s = %q, want the text kept and bad bytes replaced", name, v)
		}
	}
}
