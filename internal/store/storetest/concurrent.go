package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// testConcurrentWriters runs many writers at once through every kind of
// write; none may fail (on SQLite: no SQLITE_BUSY) and none may be lost.
func testConcurrentWriters(t *testing.T, s store.Store) {
	ctx := t.Context()
	const writers, each = 8, 15
	hash := openToken(t, s)
	errs := run(writers, func(w int) error {
		for i := range each {
			id := fmt.Sprintf("w%d-%d", w, i)
			if err := s.EnrollHost(ctx, hash, t0, hostRec(id, "host-"+id)); err != nil {
				return err
			}
			if err := s.SetHostStatus(ctx, id, api.HostOnline, at(time.Second)); err != nil {
				return err
			}
			if err := s.TouchHosts(ctx, map[string]time.Time{id: at(2 * time.Second)}); err != nil {
				return err
			}
			j := job("job-"+id, time.Duration(w*each+i)*time.Millisecond)
			if err := s.CreateJob(ctx, j, []api.Execution{execution("e-"+id, j.ID, "host-"+id)}); err != nil {
				return err
			}
			if err := s.UpdateExecutions(ctx, []store.ExecUpdate{{ID: "e-" + id, State: api.ExecSucceeded}}); err != nil {
				return err
			}
			if err := s.FinishJob(ctx, j.ID, at(time.Minute)); err != nil {
				return err
			}
			if err := s.PutSetting(ctx, fmt.Sprint("shared-", i), []byte(id)); err != nil {
				return err
			}
			if _, err := s.AcquireLease(ctx, "lease-"+id, id, t0, time.Minute); err != nil {
				return err
			}
			if _, err := s.ListJobs(ctx, 5); err != nil {
				return err
			}
		}
		return nil
	})
	for w, err := range errs {
		ok(t, err, "writer %d", w)
	}
	hs, err := s.ListHosts(ctx, false)
	ok(t, err, "ListHosts")
	if len(hs) != writers*each {
		t.Fatalf("%d hosts, want %d", len(hs), writers*each)
	}
	for _, h := range hs {
		if h.Status != api.HostOnline || !h.LastSeen.Equal(at(2*time.Second)) {
			t.Fatalf("host %s: status %q last seen %v", h.ID, h.Status, h.LastSeen)
		}
	}
	jobs, err := s.ListJobs(ctx, 0)
	ok(t, err, "ListJobs")
	if len(jobs) != writers*each {
		t.Fatalf("%d jobs, want %d", len(jobs), writers*each)
	}
	for _, j := range jobs {
		if j.State != api.JobFinished || j.Counts[api.ExecSucceeded] != 1 {
			t.Fatalf("job %s: state %q counts %v", j.ID, j.State, j.Counts)
		}
	}
	unfinished, err := s.ListUnfinishedJobs(ctx)
	ok(t, err, "ListUnfinishedJobs")
	if len(unfinished) != 0 {
		t.Fatalf("%d unfinished jobs", len(unfinished))
	}
}
