package fleet

import (
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

// TestScheduleUpdate: a changed expression does not fire for a slot that
// passed before the change; a disabled schedule starts nothing and shows
// no next run; enabled again, it runs its next slot.
func TestScheduleUpdate(t *testing.T) {
	r := newRig(t, "h")
	s, err := r.e.NewSchedule(api.Schedule{Cron: "0 3 * * *", Selector: "role=x", Script: "true"})
	if err != nil {
		t.Fatal(err)
	}
	if err := r.st.CreateSchedule(r.ctx, s); err != nil {
		t.Fatal(err)
	}
	jobs := func() int {
		t.Helper()
		js, err := r.st.ListJobs(r.ctx, 10)
		if err != nil {
			t.Fatal(err)
		}
		return len(js)
	}
	update := func(req api.UpdateScheduleRequest) api.Schedule {
		t.Helper()
		cur, err := r.st.GetSchedule(r.ctx, s.ID)
		if err != nil {
			t.Fatal(err)
		}
		up, err := r.e.UpdateSchedule(cur, req)
		if err != nil {
			t.Fatal(err)
		}
		if err := r.st.UpdateSchedule(r.ctx, up); err != nil {
			t.Fatal(err)
		}
		return up
	}
	hourly, on, off := "0 * * * *", false, true

	// 01:00:30: hourly now; the 01:00 slot passed before the change.
	r.advance(time.Hour + 30*time.Second)
	up := update(api.UpdateScheduleRequest{Cron: &hourly})
	if up.Cron != hourly || up.Script != "true" || up.UpdatedAt == nil || up.NextRunAt == nil || up.NextRunAt.Hour() != 2 {
		t.Fatalf("after update: %+v", up)
	}
	r.e.runDueSchedules(r.ctx)
	if n := jobs(); n != 0 {
		t.Fatalf("%d jobs right after the update, want 0 (the 01:00 slot predates it)", n)
	}

	// Disabled over the 02:00 slot: nothing runs, no next run shown.
	up = update(api.UpdateScheduleRequest{Disabled: &off})
	if !up.Disabled || up.NextRunAt != nil {
		t.Fatalf("disabled: %+v", up)
	}
	r.advance(time.Hour)
	r.e.runDueSchedules(r.ctx)
	if n := jobs(); n != 0 {
		t.Fatalf("%d jobs while disabled, want 0", n)
	}

	// Enabled at 02:00:30: the 03:00 slot runs, once.
	update(api.UpdateScheduleRequest{Disabled: &on})
	r.advance(time.Hour)
	r.e.runDueSchedules(r.ctx)
	r.e.runDueSchedules(r.ctx)
	if n := jobs(); n != 1 {
		t.Fatalf("%d jobs after enabling over one slot, want 1", n)
	}

	cur, _ := r.st.GetSchedule(r.ctx, s.ID)
	for _, bad := range []api.UpdateScheduleRequest{
		{Cron: ptr("every day")},
		{Cron: ptr("* * * * * *")},
		{Script: ptr("")},
		{Selector: ptr("role in (")},
		{TimeoutSeconds: ptrInt(-1)},
	} {
		if _, err := r.e.UpdateSchedule(cur, bad); err == nil {
			t.Errorf("UpdateSchedule accepted %+v", bad)
		}
	}
}

func ptr(s string) *string { return &s }
func ptrInt(n int) *int    { return &n }
