package httpapi

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"

	"github.com/nats-io/nkeys"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/infra"
	"github.com/gantry-dev/gantry/internal/store"
)

// validationAPI is newAPI's handler (a real SQLite store) with the
// deployment engine added (not started: the refused requests never reach
// its loops).
func validationAPI(t *testing.T) (*API, store.Store, string) {
	t.Helper()
	a, tok := newAPI(t)
	a.d.Revisions = deploy.NewRevisions(a.d.Store)
	a.d.Deploy = deploy.NewEngine(a.d.Store, a.d.Fleet, nil, deploy.EngineConfig{}, slog.New(slog.DiscardHandler))
	a.d.Infra = infra.New(a.d.Store, a.d.Fleet, a.d.Deploy, infra.Config{}, slog.New(slog.DiscardHandler))
	return a, a.d.Store, tok
}

func send(t *testing.T, a *API, tok, method, path, body string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+tok)
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	a.ServeHTTP(w, req)
	return w
}

// storeSnapshot counts what a refused request must not have added.
func storeSnapshot(t *testing.T, st store.Store) map[string]int {
	t.Helper()
	ctx := context.Background()
	jobs, err1 := st.ListJobs(ctx, 1000)
	scheds, err2 := st.ListSchedules(ctx)
	toks, err3 := st.ListJoinTokens(ctx)
	groups, err4 := st.ListGroups(ctx, "")
	hosts, err5 := st.ListHosts(ctx, true)
	apps, err6 := st.ListApplications(ctx)
	envs, err7 := st.ListEnvironments(ctx)
	for _, err := range []error{err1, err2, err3, err4, err5, err6, err7} {
		if err != nil {
			t.Fatal(err)
		}
	}
	labels := 0
	for _, h := range hosts {
		labels += len(h.Labels)
	}
	return map[string]int{"jobs": len(jobs), "schedules": len(scheds), "join tokens": len(toks), "groups": len(groups),
		"hosts": len(hosts), "host labels": labels, "apps": len(apps), "envs": len(envs)}
}

// Bad values through the real HTTP API: each is a 4xx whose message names
// the field and what is valid, and nothing is stored.
func TestBadValuesAreRefusedAndNotStored(t *testing.T) {
	a, st, tok := validationAPI(t)
	ctx := context.Background()
	// What the cases need: an application, a host (enrolled with a join
	// token made through the API) and the host online is not needed.
	if w := send(t, a, tok, "POST", "/api/v1/apps", `{"name":"shop"}`); w.Code != 201 {
		t.Fatalf("create app: %d %s", w.Code, w.Body)
	}
	w := send(t, a, tok, "POST", "/api/v1/join-tokens", `{"ttl_seconds":600,"max_uses":5}`)
	var jt api.JoinToken
	if err := json.Unmarshal(w.Body.Bytes(), &jt); w.Code != 201 || err != nil {
		t.Fatalf("create join token: %d %s", w.Code, w.Body)
	}
	kp, _ := nkeys.CreateUser()
	pub, _ := kp.PublicKey()
	enroll := func(name, labels string) string {
		return fmt.Sprintf(`{"join_token":%q,"name":%q,"nkey":%q,"labels":%s,"facts":{"hostname":"h","os":"linux","arch":"amd64","cpus":1,"memory_bytes":1,"addresses":[],"agent_version":"t"}}`,
			jt.Token, name, pub, labels)
	}
	if w := send(t, a, tok, "POST", "/api/v1/enroll", enroll("web-1", `{}`)); w.Code != 201 {
		t.Fatalf("enroll: %d %s", w.Code, w.Body)
	}
	job := func(extra string) string { return `{"selector":"","script":"echo hi"` + extra + `}` }
	group := func(hc string) string { return `{"name":"web","selector":"role=web","health_check":` + hc + `}` }

	cases := []struct {
		name, method, path, body string
		status                   int
		want                     string
	}{
		{"overflowing job timeout", "POST", "/api/v1/jobs", job(`,"timeout_seconds":9223372037`), 400,
			"timeout_seconds: 9223372037 is out of range: want 1 to 86400 (24h)"},
		{"negative job timeout", "POST", "/api/v1/jobs", job(`,"timeout_seconds":-1`), 400,
			"timeout_seconds: -1 is out of range: want 1 to 86400 (24h); 0 means the default, 600 (10m)"},
		{"job timeout over 24h", "POST", "/api/v1/jobs", job(`,"timeout_seconds":86401`), 400, "timeout_seconds: 86401 is out of range"},
		{"job timeout beyond int64", "POST", "/api/v1/jobs", job(`,"timeout_seconds":92233720368547758070`), 400,
			"timeout_seconds: want a JSON int, got number 92233720368547758070"},
		{"negative concurrency", "POST", "/api/v1/jobs", job(`,"concurrency":-1`), 400, "concurrency: -1 is out of range: want 1 to 100000; 0 means all matching hosts at once"},
		{"huge concurrency", "POST", "/api/v1/jobs", job(`,"concurrency":100001`), 400, "concurrency: 100001 is out of range"},
		{"user with a shell character", "POST", "/api/v1/jobs", job(`,"user":"root;id"`), 400, `user: user "root;id": want a user name or a numeric uid`},
		{"invalid UTF-8 in the script", "POST", "/api/v1/jobs", "{\"selector\":\"\",\"script\":\"echo \xff\xfe\"}", 400,
			`request body: invalid UTF-8 at byte 30 (in field "script")`},
		{"invalid UTF-8 in a label key", "POST", "/api/v1/join-tokens", "{\"labels\":{\"ro\xc3le\":\"x\"}}", 400,
			`request body: invalid UTF-8 at byte 14 (in a key of "labels")`},
		{"lone surrogate escape in the script", "POST", "/api/v1/jobs", `{"selector":"","script":"echo \\\ud83d\ud83d x"}`, 400,
			`request body: \ud83d at byte 32 is half of a UTF-16 surrogate pair (in field "script")`},
		{"low surrogate first", "POST", "/api/v1/jobs", `{"selector":"","script":"\ude00\ud83d"}`, 400, `\ude00 at byte 25 is half of a UTF-16 surrogate pair`},
		{"trailing JSON after the body", "POST", "/api/v1/jobs", job(``) + `{"selector":"","script":"rm -rf /"}`, 400,
			"request body: unexpected data after the JSON value at byte 34: send exactly one JSON value"},
		{"trailing garbage after the body", "POST", "/api/v1/jobs", job(``) + "\n  x", 400, "unexpected data after the JSON value at byte 37"},
		{"unknown field", "POST", "/api/v1/jobs", job(`,"timeout":5`), 400, `request body: json: unknown field "timeout"`},
		{"empty body", "POST", "/api/v1/jobs", "", 400, "request body is empty: want a JSON object"},
		{"schedule every nanosecond", "POST", "/api/v1/schedules", `{"cron":"@every 1ns","selector":"","script":"echo hi"}`, 400,
			`cron: "@every 1ns" runs every 1ns, more often than the minimum interval of 10s (the server's --min-schedule-interval)`},
		{"schedule every 9s", "POST", "/api/v1/schedules", `{"cron":"@every 9s","selector":"","script":"echo hi"}`, 400, `runs every 9s, more often than the minimum interval of 10s`},
		{"schedule that never runs", "POST", "/api/v1/schedules", `{"cron":"0 0 30 2 *","selector":"","script":"echo hi"}`, 400, `cron: "0 0 30 2 *" never runs`},
		{"schedule with an overflowing timeout", "POST", "/api/v1/schedules", `{"cron":"@hourly","selector":"","script":"echo hi","timeout_seconds":9223372037}`, 400,
			"timeout_seconds: 9223372037 is out of range"},
		{"overflowing join token ttl", "POST", "/api/v1/join-tokens", `{"ttl_seconds":9223372037}`, 400,
			"ttl_seconds: 9223372037 is out of range: want 1 to 31536000 (8760h)"},
		{"negative join token uses", "POST", "/api/v1/join-tokens", `{"max_uses":-1}`, 400, "max_uses: -1 is out of range: want 1 to 1000000; 0 means unlimited"},
		{"join token label with a space", "POST", "/api/v1/join-tokens", `{"labels":{"role":"web server"}}`, 400,
			`labels: role: invalid label value "web server": invalid character ' '`},
		{"enroll with a $(…) label", "POST", "/api/v1/enroll", enroll("web-2", `{"role":"$(id)"}`), 400, `labels: role: invalid label value "$(id)"`},
		{"enroll with a bad name", "POST", "/api/v1/enroll", enroll("web 2", `{}`), 400, `name: host name "web 2": only letters, digits`},
		{"label with a space set by hand", "PATCH", "/api/v1/hosts/web-1/labels", `{"set":{"my role":"web"}}`, 400, `labels: invalid label key "my role": invalid character ' '`},
		{"too many labels", "PATCH", "/api/v1/hosts/web-1/labels", manyLabels(65), 400, "labels: 65 labels; the limit is 64"},
		{"health check tcp port out of range", "POST", "/api/v1/apps/shop/groups", group(`{"tcp":"127.0.0.1:70000"}`), 400,
			`health_check.tcp: address "127.0.0.1:70000": port "70000" is out of range: want 1 to 65535`},
		{"health check tcp host with $(…)", "POST", "/api/v1/apps/shop/groups", group(`{"tcp":"$(reboot):80"}`), 400,
			`health_check.tcp: address "$(reboot):80": host "$(reboot)": want an IP address or a DNS name`},
		{"health check tcp without a port", "POST", "/api/v1/apps/shop/groups", group(`{"tcp":"db.internal"}`), 400,
			`health_check.tcp: address "db.internal": want host:port`},
		{"health check url host with spaces", "POST", "/api/v1/apps/shop/groups", group(`{"http":"http://web server/healthz"}`), 400,
			`health_check.http: URL "http://web server/healthz"`},
		{"overflowing health check timeout", "POST", "/api/v1/apps/shop/groups", group(`{"tcp":"5432","timeout_seconds":9223372037}`), 400,
			"health_check.timeout_seconds: 9223372037 is out of range: want 1 to 3600 (1h)"},
		{"health check interval of 1ms", "POST", "/api/v1/apps/shop/groups", group(`{"tcp":"5432","interval_ms":1}`), 400,
			"health_check.interval_ms: 1 is out of range: want 100 to 60000 (100ms to 1m)"},
		{"health check expect_status out of range", "POST", "/api/v1/apps/shop/groups", group(`{"http":"http://127.0.0.1/","expect_status":700}`), 400,
			"health_check.expect_status: 700 is out of range: want 100 to 599"},
		{"minimum healthy count out of range", "POST", "/api/v1/apps/shop/groups", `{"name":"web","selector":"role=web","config":"99999999999999999999"}`, 400,
			`config: minimum of healthy hosts "99999999999999999999" is out of range: want a count 0 to 10000, or a percentage 0% to 100%`},
		{"group name with spaces", "POST", "/api/v1/apps/shop/groups", `{"name":"web servers","selector":"role=web"}`, 400, `name: group name "web servers": use 1 to 63`},
		{"overflowing lock timeout", "POST", "/api/v1/envs/prod/apply", `{"lock_timeout_seconds":9223372037,"destroy":true}`, 400,
			"lock_timeout_seconds: 9223372037 is out of range: want 0 to 3600 (1h)"},
		{"environment name with $(…)", "POST", "/api/v1/envs/$(id)/plan", `{"destroy":true}`, 400, `env: environment name "$(id)": use 1 to 32`},
		{"list limit out of range", "GET", "/api/v1/jobs?limit=9223372037", "", 400, "limit: 9223372037 is out of range: want 1 to 1000"},
	}
	before := storeSnapshot(t, st)
	if before["hosts"] != 1 || before["join tokens"] != 1 || before["apps"] != 1 {
		t.Fatalf("setup: %v", before)
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := send(t, a, tok, tc.method, tc.path, tc.body)
			var e api.Error
			_ = json.Unmarshal(w.Body.Bytes(), &e)
			if w.Code != tc.status || !strings.Contains(e.Error, tc.want) {
				t.Errorf("%s %s: %d %q\nwant %d with %q", tc.method, tc.path, w.Code, e.Error, tc.status, tc.want)
			}
			if after := storeSnapshot(t, st); !reflect.DeepEqual(after, before) {
				t.Errorf("the store changed: %v, was %v", after, before)
			}
		})
	}
	// The same requests with good values are taken (the cases fail for
	// the reason they name, not another).
	for _, good := range []struct{ method, path, body string }{
		{"POST", "/api/v1/schedules", `{"cron":"@daily","selector":"","script":"echo \\ud83d \ud83d\ude00 ok"}`},
		{"POST", "/api/v1/schedules", `{"cron":"@every 10s","selector":"","script":"echo hi","timeout_seconds":86400}`},
		{"POST", "/api/v1/apps/shop/groups", group(`{"tcp":"db.internal:5432","timeout_seconds":3600,"interval_ms":100}`)},
		{"PATCH", "/api/v1/hosts/web-1/labels", manyLabels(64)},
	} {
		if w := send(t, a, tok, good.method, good.path, good.body); w.Code >= 300 {
			t.Errorf("%s %s %s: %d %s", good.method, good.path, good.body, w.Code, w.Body)
		}
	}
	if s, _ := st.ListSchedules(ctx); len(s) != 2 || !strings.Contains(s[0].Script+s[1].Script, `\ud83d 😀 ok`) {
		t.Errorf("good schedule not stored: %v", s)
	}
}

func manyLabels(n int) string {
	m := map[string]string{}
	for i := range n {
		m[fmt.Sprintf("k%d", i)] = "v"
	}
	b, _ := json.Marshal(api.LabelsRequest{Set: m})
	return string(b)
}
