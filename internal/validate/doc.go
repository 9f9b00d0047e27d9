// Package validate holds gantry's input limits and the one validator of
// each kind of value that users give: durations and counts with their
// documented ranges, names, labels, health checks and their addresses, and
// schedules. The HTTP API (through the engines) and the HCL loader
// (internal/infra/config) call the same functions, so a value refused by
// one entry point is refused by the other, with the same words.
//
// Every validator returns a *Error naming the field and what would be
// valid; callers that report diagnostics (HCL) use its Msg at the position
// of the value, callers that answer HTTP requests wrap it (it maps to 400).
//
// # Decisions
//
//   - Ranges are checked on the integer the user sent, before any
//     multiplication into a time.Duration: 9223372037 seconds is refused
//     as out of range, never turned into a negative duration.
//   - A zero that means "the default" is allowed outside [Min, Max] only
//     where the Range says so (Zero), and the message says what it means.
//   - Every documented range is a value of [Limits]; docs/limits.md carries
//     the table rendered from it ([Table]) and a test keeps them equal.
//   - Schedules have a minimum interval (default 10 s, the server's
//     --min-schedule-interval): @every is checked on its own duration (as
//     written, before robfig/cron rounds it up to 1 s), cron expressions on
//     the gaps between their next runs over up to a year. Schedules stored
//     before a stricter minimum keep running: the limit is checked when a
//     schedule is created.
//   - The package imports only leaves (api, selector) and robfig/cron, so
//     engines, the API and the HCL loader can all use it.
package validate
