package fleet

import (
	"context"
	"fmt"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/ids"
	"github.com/gantry-dev/gantry/internal/validate"
)

// ParseCron checks a schedule expression: five fields (minute hour
// day-of-month month day-of-week) or a descriptor such as @hourly or
// @every 30s, as robfig/cron's standard parser reads them. It does not
// check the minimum interval (stored schedules keep running); NewSchedule
// does.
func ParseCron(expr string) (cron.Schedule, error) {
	s, err := validate.Cron("cron", expr)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	return s, nil
}

// specOf is the job a schedule starts.
func specOf(s api.Schedule) api.JobSpec {
	return api.JobSpec{Selector: s.Selector, Script: s.Script, Concurrency: s.Concurrency, TimeoutSeconds: s.TimeoutSeconds, User: s.User}
}

// NewSchedule validates a schedule request and fills its id and times. A
// schedule that would run more often than Config.MinScheduleInterval is
// refused.
func (e *Engine) NewSchedule(s api.Schedule) (api.Schedule, error) {
	now := e.now().UTC()
	c, err := validate.Schedule("cron", s.Cron, e.cfg.MinScheduleInterval, now)
	if err != nil {
		return s, fmt.Errorf("%w: %w", ErrInvalid, err)
	}
	spec := specOf(s)
	if err := ValidateSpec(&spec); err != nil {
		return s, err
	}
	s.TimeoutSeconds = spec.TimeoutSeconds
	s.ID = ids.New("s")
	s.CreatedAt = now
	s.LastRunAt, s.LastJobID, s.UpdatedAt = nil, "", nil // the server's to set, not the client's
	next := c.Next(s.CreatedAt)
	s.NextRunAt = &next
	return s, nil
}

// lastSlot is the latest time at or before now that the schedule fires.
func lastSlot(c cron.Schedule, since, now time.Time) (time.Time, bool) {
	var slot time.Time
	for t := c.Next(since); !t.After(now); t = c.Next(t) {
		slot = t
	}
	return slot, !slot.IsZero()
}

// scheduleLoop fires due schedules once a second. A server that was down
// over several slots runs only the latest one (no burst of catch-up jobs).
func (e *Engine) scheduleLoop(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		e.runDueSchedules(ctx)
	}
}

func (e *Engine) runDueSchedules(ctx context.Context) {
	scheds, err := e.st.ListSchedules(ctx)
	if err != nil {
		e.log.Warn("list schedules", "err", err)
		return
	}
	now := e.now().UTC()
	for _, s := range scheds {
		if s.Disabled {
			continue
		}
		c, err := ParseCron(s.Cron)
		if err != nil {
			continue
		}
		since := s.CreatedAt
		if s.LastRunAt != nil && s.LastRunAt.After(since) {
			since = *s.LastRunAt
		}
		// Slots before the last change are not the new settings' to run.
		if s.UpdatedAt != nil && s.UpdatedAt.After(since) {
			since = *s.UpdatedAt
		}
		if limit := now.Add(-24 * time.Hour); since.Before(limit) {
			since = limit // bound the walk over missed slots
		}
		slot, due := lastSlot(c, since, now)
		if !due {
			continue
		}
		jobID := ids.New("j")
		ok, err := e.st.MarkScheduleRun(ctx, s.ID, slot, jobID)
		if err != nil || !ok {
			continue
		}
		job, err := e.createJob(ctx, specOf(s), s.ID, jobID, true)
		if err != nil {
			e.log.Warn("scheduled job", "schedule", s.ID, "err", err)
			continue
		}
		e.log.Info("schedule fired", "schedule", s.ID, "slot", slot, "job", job.ID)
	}
}

// WithNextRun fills a schedule's next run time from its expression.
func (e *Engine) WithNextRun(s api.Schedule) api.Schedule {
	c, err := ParseCron(s.Cron)
	if err != nil || s.Disabled {
		s.NextRunAt = nil
		return s
	}
	from := e.now().UTC()
	next := c.Next(from)
	s.NextRunAt = &next
	return s
}

// UpdateSchedule validates a change of schedule s (nil fields of req are
// left as they are) and returns the schedule to store: its runs so far are
// kept, UpdatedAt is now, and slots before now are not run for the new
// settings. A new expression must respect Config.MinScheduleInterval, like
// NewSchedule's.
func (e *Engine) UpdateSchedule(s api.Schedule, req api.UpdateScheduleRequest) (api.Schedule, error) {
	now := e.now().UTC()
	if req.Cron != nil {
		if _, err := validate.Schedule("cron", *req.Cron, e.cfg.MinScheduleInterval, now); err != nil {
			return s, fmt.Errorf("%w: %w", ErrInvalid, err)
		}
		s.Cron = *req.Cron
	}
	if req.Selector != nil {
		s.Selector = *req.Selector
	}
	if req.Script != nil {
		s.Script = *req.Script
	}
	if req.Concurrency != nil {
		s.Concurrency = *req.Concurrency
	}
	if req.TimeoutSeconds != nil {
		s.TimeoutSeconds = *req.TimeoutSeconds
	}
	if req.User != nil {
		s.User = *req.User
	}
	if req.Disabled != nil {
		s.Disabled = *req.Disabled
	}
	spec := specOf(s)
	if err := ValidateSpec(&spec); err != nil {
		return s, err
	}
	s.TimeoutSeconds = spec.TimeoutSeconds
	s.UpdatedAt = &now
	return e.WithNextRun(s), nil
}
