package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var scheduleTests = []test{
	{"Schedules/CRUD", testSchedulesCRUD},
	{"Schedules/MarkRun", testSchedulesMarkRun},
	{"Schedules/MarkRunConcurrent", testSchedulesMarkRunConcurrent},
}

var leaseTests = []test{
	{"Leases/Rules", testLeaseRules},
	{"Leases/Concurrent", testLeaseConcurrent},
}

var settingTests = []test{
	{"Settings", testSettings},
}

// schedule returns a schedule created at t0+d.
func schedule(id string, d time.Duration) api.Schedule {
	return api.Schedule{ID: id, Cron: "*/5 * * * *", Selector: "all", Script: "uptime", Concurrency: 3,
		TimeoutSeconds: 60, User: "ops", CreatedAt: at(d), NextRunAt: ptr(at(d + 5*time.Minute))}
}

// utcSchedule is what a store returns for sch.
func utcSchedule(sch api.Schedule) api.Schedule {
	sch.CreatedAt = utc(sch.CreatedAt)
	for _, p := range []**time.Time{&sch.LastRunAt, &sch.NextRunAt} {
		if *p != nil {
			*p = ptr(utc(**p))
		}
	}
	return sch
}

func testSchedulesCRUD(t *testing.T, s store.Store) {
	ctx := t.Context()
	list, err := s.ListSchedules(ctx)
	ok(t, err, "ListSchedules on an empty store")
	if len(list) != 0 {
		t.Fatalf("ListSchedules on an empty store = %+v", list)
	}
	b, a, c := schedule("b", 2*time.Second), schedule("a", time.Second), schedule("c", 3*time.Second)
	a.LastRunAt, a.LastJobID = ptr(at(-time.Hour)), "job-0"
	c.NextRunAt = nil
	for _, sch := range []api.Schedule{b, a, c} {
		ok(t, s.CreateSchedule(ctx, sch), "CreateSchedule %s", sch.ID)
	}
	isErr(t, s.CreateSchedule(ctx, schedule("a", 0)), store.ErrConflict, "CreateSchedule with a duplicate id")

	got, err := s.GetSchedule(ctx, "a")
	ok(t, err, "GetSchedule")
	same(t, got, utcSchedule(a), "GetSchedule")
	list, err = s.ListSchedules(ctx)
	ok(t, err, "ListSchedules")
	same(t, list, []api.Schedule{utcSchedule(a), utcSchedule(b), utcSchedule(c)}, "ListSchedules")

	ok(t, s.DeleteSchedule(ctx, "b"), "DeleteSchedule")
	_, err = s.GetSchedule(ctx, "b")
	isErr(t, err, store.ErrNotFound, "GetSchedule after delete")
	isErr(t, s.DeleteSchedule(ctx, "b"), store.ErrNotFound, "DeleteSchedule again")
	_, err = s.GetSchedule(ctx, "nope")
	isErr(t, err, store.ErrNotFound, "GetSchedule of a missing schedule")
	list, err = s.ListSchedules(ctx)
	ok(t, err, "ListSchedules")
	same(t, list, []api.Schedule{utcSchedule(a), utcSchedule(c)}, "ListSchedules after delete")
}

func testSchedulesMarkRun(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateSchedule(ctx, schedule("s", 0)), "CreateSchedule")
	ok(t, s.CreateSchedule(ctx, schedule("other", 0)), "CreateSchedule other")
	slot1, slot2 := at(5*time.Minute), at(10*time.Minute)
	for _, st := range []struct {
		name    string
		slot    time.Time
		jobID   string
		want    bool
		wantJob string
		wantRun time.Time
	}{
		{"first slot", slot1, "job-1", true, "job-1", slot1},
		{"same slot again", slot1, "job-1b", false, "job-1", slot1},
		{"same instant in another zone", slot1.UTC(), "job-1c", false, "job-1", slot1},
		{"earlier slot", slot1.Add(-time.Nanosecond), "job-0", false, "job-1", slot1},
		{"next slot", slot2, "job-2", true, "job-2", slot2},
		{"next slot again", slot2, "job-2b", false, "job-2", slot2},
	} {
		got, err := s.MarkScheduleRun(ctx, "s", st.slot, st.jobID)
		ok(t, err, "MarkScheduleRun %s", st.name)
		if got != st.want {
			t.Fatalf("MarkScheduleRun %s = %v, want %v", st.name, got, st.want)
		}
		sch, err := s.GetSchedule(ctx, "s")
		ok(t, err, "GetSchedule")
		if sch.LastJobID != st.wantJob || sch.LastRunAt == nil || !sch.LastRunAt.Equal(st.wantRun) {
			t.Fatalf("after %s: last job %q last run %v, want %q %v", st.name, sch.LastJobID, sch.LastRunAt,
				st.wantJob, st.wantRun)
		}
	}
	other, err := s.GetSchedule(ctx, "other")
	ok(t, err, "GetSchedule other")
	same(t, other, utcSchedule(schedule("other", 0)), "a schedule that never ran")
	_, err = s.MarkScheduleRun(ctx, "nope", slot1, "job")
	isErr(t, err, store.ErrNotFound, "MarkScheduleRun of a missing schedule")
}

func testSchedulesMarkRunConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	ok(t, s.CreateSchedule(ctx, schedule("s", 0)), "CreateSchedule")
	const servers, rounds = 8, 40
	for r := range rounds {
		slot := at(time.Duration(r+1) * time.Minute)
		type result struct {
			won bool
			err error
		}
		res := run(servers, func(i int) result {
			won, err := s.MarkScheduleRun(ctx, "s", slot, fmt.Sprintf("job-%d-%d", r, i))
			return result{won, err}
		})
		winner := -1
		for i, x := range res {
			ok(t, x.err, "MarkScheduleRun")
			if x.won {
				if winner >= 0 {
					t.Fatalf("round %d: servers %d and %d both won slot %v", r, winner, i, slot)
				}
				winner = i
			}
		}
		if winner < 0 {
			t.Fatalf("round %d: nobody won slot %v", r, slot)
		}
		sch, err := s.GetSchedule(ctx, "s")
		ok(t, err, "GetSchedule")
		if want := fmt.Sprintf("job-%d-%d", r, winner); sch.LastJobID != want {
			t.Fatalf("round %d: last job %q, want the winner's %q", r, sch.LastJobID, want)
		}
	}
}

func testLeaseRules(t *testing.T, s store.Store) {
	ctx := t.Context()
	const ttl = 10 * time.Second
	for _, st := range []struct {
		name, lease, holder string
		now                 time.Time
		wantErr             error
		wantEpoch           int64
	}{
		{"first holder", "sched", "a", t0, nil, 1},
		{"renew before expiry", "sched", "a", at(5 * time.Second), nil, 1},
		{"other holder 1ns before expiry", "sched", "b", at(15*time.Second - 1), store.ErrLeaseHeld, 0},
		{"other lease is independent", "gc", "b", at(6 * time.Second), nil, 1},
		{"take over at expiry", "sched", "b", at(15 * time.Second), nil, 2},
		{"old holder is fenced out", "sched", "a", at(16 * time.Second), store.ErrLeaseHeld, 0},
		{"renew after own expiry keeps epoch", "sched", "b", at(60 * time.Second), nil, 2},
		{"old holder takes it back", "sched", "a", at(70 * time.Second), nil, 3},
		{"renew again", "sched", "a", at(71 * time.Second), nil, 3},
		{"third holder after expiry", "sched", "c", at(200 * time.Second), nil, 4},
	} {
		l, err := s.AcquireLease(ctx, st.lease, st.holder, st.now, ttl)
		if st.wantErr != nil {
			isErr(t, err, st.wantErr, "%s", st.name)
			continue
		}
		ok(t, err, "%s", st.name)
		want := store.Lease{Name: st.lease, Holder: st.holder, Epoch: st.wantEpoch, ExpiresAt: utc(st.now.Add(ttl))}
		same(t, l, want, "%s", st.name)
	}
}

func testLeaseConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const ttl, holders, rounds = time.Minute, 8, 30
	prev := ""
	for r := range rounds {
		now := at(time.Duration(r) * ttl) // the previous lease expires exactly now
		type result struct {
			l   store.Lease
			err error
		}
		res := run(holders, func(i int) result {
			holder := fmt.Sprintf("h%d", i)
			if holder == prev {
				holder = "newcomer" // every contender is another holder
			}
			l, err := s.AcquireLease(ctx, "singleton", holder, now, ttl)
			return result{l, err}
		})
		var won []store.Lease
		for _, x := range res {
			switch {
			case x.err == nil:
				won = append(won, x.l)
			case !errors.Is(x.err, store.ErrLeaseHeld):
				t.Fatalf("round %d: AcquireLease: %v", r, x.err)
			}
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d holders got the lease: %+v", r, len(won), won)
		}
		if won[0].Epoch != int64(r+1) || !won[0].ExpiresAt.Equal(now.Add(ttl)) {
			t.Fatalf("round %d: lease %+v, want epoch %d", r, won[0], r+1)
		}
		prev = won[0].Holder
		// The winner renews (to the same expiry); others stay locked out
		// until then, and the next round starts exactly at expiry.
		l, err := s.AcquireLease(ctx, "singleton", prev, now.Add(ttl/2), ttl/2)
		ok(t, err, "round %d: renew", r)
		if l.Epoch != int64(r+1) || !l.ExpiresAt.Equal(now.Add(ttl)) {
			t.Fatalf("round %d: renewal gave %+v, want epoch %d", r, l, r+1)
		}
		_, err = s.AcquireLease(ctx, "singleton", prev+"-rival", now.Add(ttl-time.Nanosecond), ttl)
		isErr(t, err, store.ErrLeaseHeld, "round %d: rival before expiry", r)
	}
}

func testSettings(t *testing.T, s store.Store) {
	ctx := t.Context()
	_, err := s.GetSetting(ctx, "missing")
	isErr(t, err, store.ErrNotFound, "GetSetting of a missing key")
	for _, tc := range []struct {
		name  string
		key   string
		value []byte
	}{
		{"text", "schema.marker", []byte("v1")},
		{"overwrite", "schema.marker", []byte("v2-longer")},
		{"binary", "bin", []byte{0, 1, 2, 0xff, 0xfe, 0, 'x'}},
		{"empty", "empty", []byte{}},
		{"nil", "nil", nil},
		{"large", "large", bytes.Repeat([]byte("0123456789"), 10000)},
		{"odd key", "ä/key with spaces?", []byte(strings.Repeat("?", 3))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ok(t, s.PutSetting(ctx, tc.key, tc.value), "PutSetting")
			got, err := s.GetSetting(ctx, tc.key)
			ok(t, err, "GetSetting")
			if !bytes.Equal(got, tc.value) {
				t.Fatalf("GetSetting = %q, want %q", got, tc.value)
			}
		})
	}
	got, err := s.GetSetting(ctx, "bin")
	ok(t, err, "GetSetting")
	if !bytes.Equal(got, []byte{0, 1, 2, 0xff, 0xfe, 0, 'x'}) {
		t.Fatalf("setting changed by writes of other keys: %q", got)
	}
}
