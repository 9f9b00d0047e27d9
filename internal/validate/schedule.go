package validate

import (
	"strings"
	"time"

	"github.com/robfig/cron/v3"
)

// scheduleHorizon bounds the walk over a cron expression's next runs.
const (
	scheduleHorizon = 366 * 24 * time.Hour
	scheduleRuns    = 1000
)

// Cron parses a schedule expression: five fields (minute hour
// day-of-month month day-of-week) or a descriptor such as @hourly or
// @every 30s, as robfig/cron's standard parser reads them.
func Cron(field, expr string) (cron.Schedule, error) {
	s, err := cron.ParseStandard(expr)
	if err != nil {
		return nil, errorf(field, "%q: %v (want 5 fields \"min hour dom month dow\", e.g. \"*/5 * * * *\", or @hourly, @daily, @every 30m)", expr, err)
	}
	return s, nil
}

// Schedule parses expr with Cron and refuses a schedule that would run
// more often than every min: an @every shorter than min, or a cron
// expression two of whose runs within the next year (at most 1000 runs
// from `from`) are closer than min. A schedule that never runs is refused
// too.
func Schedule(field, expr string, min time.Duration, from time.Time) (cron.Schedule, error) {
	s, err := Cron(field, expr)
	if err != nil {
		return nil, err
	}
	tooOften := func(every string) error {
		return errorf(field, "%q runs every %s, more often than the minimum interval of %s (the server's --min-schedule-interval)",
			expr, every, DurationString(min))
	}
	if rest, ok := strings.CutPrefix(strings.TrimSpace(expr), "@every "); ok {
		// Checked as written: robfig/cron rounds anything under 1s up to 1s.
		d, err := time.ParseDuration(strings.TrimSpace(rest))
		if err == nil && d < min {
			return nil, tooOften(d.String())
		}
		return s, nil
	}
	prev := s.Next(from)
	if prev.IsZero() {
		return nil, errorf(field, "%q never runs (no matching date in the next 5 years)", expr)
	}
	end := prev.Add(scheduleHorizon)
	for range scheduleRuns {
		next := s.Next(prev)
		if next.IsZero() || next.After(end) {
			break
		}
		if gap := next.Sub(prev); gap < min {
			return nil, tooOften(DurationString(gap) + " at times (e.g. " + prev.UTC().Format(time.RFC3339) + " then " + next.UTC().Format(time.RFC3339) + ")")
		}
		prev = next
	}
	return s, nil
}
