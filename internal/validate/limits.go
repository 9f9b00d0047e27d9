package validate

import (
	"fmt"
	"strings"
)

// Limit is one row of the documented limits (docs/limits.md).
type Limit struct {
	// Where is the entry point: API route body, HCL attribute, CLI flag.
	Where string
	// Field names the value there.
	Field string
	// Valid says what is accepted.
	Valid string
}

func ranged(where, field string, r Range) Limit {
	return Limit{Where: where, Field: field, Valid: r.Want()}
}

// Limits are every documented limit on what users give gantry, in the
// order docs/limits.md lists them.
func Limits() []Limit {
	return []Limit{
		{"every JSON request body", "(body)", "exactly one JSON value, valid UTF-8, no unknown fields; at most 1 MiB unless the route says otherwise"},
		ranged("POST /api/v1/jobs, /schedules; `gantry run`, `schedule create --timeout`", "timeout_seconds", JobTimeout),
		ranged("POST /api/v1/jobs, /schedules; `--concurrency`", "concurrency", JobConcurrency),
		ranged("POST /api/v1/jobs, /schedules", "script", ScriptSize),
		{"POST /api/v1/jobs, /schedules; `--user`", "user", fmt.Sprintf("empty, or a user name or uid: 1 to %d of letters, digits, '.', '_', '@', '-' (not first), optional final '$'", MaxUserName)},
		{"POST /api/v1/schedules; `schedule create --cron`", "cron", "5 cron fields or a descriptor (@hourly, @every 30m); runs at least the server's `--min-schedule-interval` apart (default 10s)"},
		ranged("`gantry server`", "--min-schedule-interval", ScheduleInterval),
		ranged("`gantry server`", "--heartbeat", Heartbeat),
		ranged("`gantry agent`", "--keep-revisions", KeepRevisions),
		{"jobs (server)", "stdout, stderr", "at most 1 MiB per stream and host is stored; `stdout_truncated`/`stderr_truncated` say when more was written"},
		ranged("POST /api/v1/join-tokens; `token create --ttl`", "ttl_seconds", JoinTokenTTL),
		ranged("POST /api/v1/join-tokens; `token create --uses`", "max_uses", JoinTokenUses),
		ranged("POST /api/v1/tokens; `token create --api --ttl`", "ttl_seconds", APITokenTTL),
		{"POST /api/v1/tokens; `token create --api --name`", "name", fmt.Sprintf("1 to %d letters, digits, '-', '_', '.' and '@'; unique", MaxTokenName)},
		{"POST /api/v1/jobs, deployments, rollbacks", "Idempotency-Key (header)", fmt.Sprintf("1 to %d visible ASCII characters; kept 24h per API token", MaxIdempotencyKey)},
		{"hosts, join tokens, enrollment, HCL `labels`", "labels", fmt.Sprintf("at most %d; keys `[prefix/]name`, values empty or a name: names 1 to 63 of `[A-Za-z0-9_.-]` starting and ending with a letter or digit, prefix a lower-case DNS subdomain", Labels.Max)},
		{"POST /api/v1/enroll; `agent --name`", "name", fmt.Sprintf("host name: 1 to %d letters, digits, '-', '_', '.'", MaxHostName)},
		{"POST /api/v1/apps, /apps/{app}/groups", "name", fmt.Sprintf("1 to %d lower-case letters, digits and '-', starting and ending with a letter or digit", MaxAppName)},
		{"environments (`--env`)", "env", fmt.Sprintf("1 to %d lower-case letters, digits and '-', starting and ending with a letter or digit", MaxEnvName)},
		{"HCL `group`, `host`, `network` blocks", "name", fmt.Sprintf("1 to %d lower-case letters, digits and '-', starting and ending with a letter or digit", MaxBlockName)},
		{"group `config`, `--min-healthy`, HCL `deploy.config`", "config", "OneAtATime, HalfAtATime, AllAtOnce, a count " + MinHealthyCount.Want() + ", or a percentage " + MinHealthyPercent.Want()},
		{"health check (API `health_check`, HCL `health_check`, `--health-http`)", "http", "http:// or https:// URL with an IP or DNS host, optional port 1 to 65535, no spaces"},
		{"health check (`--health-tcp`)", "tcp", "host:port or a port alone (127.0.0.1); host an IP or DNS name; port 1 to 65535"},
		{"health check (`--health-command`)", "command", fmt.Sprintf("a program and its arguments (no shell): at most %d words, %d bytes, no NUL", MaxCommandArgs, MaxCommandBytes)},
		ranged("health check; `--health-status`", "expect_status", HealthStatus),
		ranged("health check; `--health-timeout`; HCL `timeout`", "timeout_seconds", HealthTimeout),
		ranged("health check; HCL `interval`", "interval_ms", HealthInterval),
		ranged("HCL group `count`; `gantry scale GROUP=N`", "count", GroupCount),
		ranged("HCL `setup_timeout`, `configure_timeout`, `shutdown_timeout`", "timeout", LifecycleTimeout),
		ranged("plan/apply/destroy; `--lock-timeout`", "lock_timeout_seconds", LockTimeout),
		ranged("groups (`--drain-timeout`), HCL `load_balancer.drain_timeout`", "drain_timeout_seconds", DrainTimeout),
		{"deployments, revisions", "description", fmt.Sprintf("valid UTF-8, no control characters but tab and newline, at most %d bytes", MaxDescription)},
		ranged("list routes (`--limit`)", "limit", ListLimit),
	}
}

// Table renders Limits as the Markdown table of docs/limits.md.
func Table() string {
	var b strings.Builder
	b.WriteString("| where | field | valid |\n|---|---|---|\n")
	for _, l := range Limits() {
		fmt.Fprintf(&b, "| %s | `%s` | %s |\n", l.Where, l.Field, strings.ReplaceAll(l.Valid, "|", "\\|"))
	}
	return b.String()
}
