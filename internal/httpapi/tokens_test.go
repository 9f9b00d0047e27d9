package httpapi

import (
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nkeys"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/deploy"
	"github.com/gantry-dev/gantry/internal/store"
)

// API tokens: create with a name, owner and expiry; list; expiry enforced
// with 401 "token expired"; delete with the own-token and last-token guards.
func TestAPITokens(t *testing.T) {
	a, admin := newAPI(t)
	code, b, _ := call(t, a, admin, "POST", "/api/v1/tokens", `{"name":"ci","ttl_seconds":3600}`)
	if code != 201 {
		t.Fatalf("create: %d %s", code, b)
	}
	var ci api.APIToken
	_ = json.Unmarshal([]byte(b), &ci)
	if ci.Token == "" || ci.Owner != "admin" || ci.ExpiresAt == nil || time.Until(*ci.ExpiresAt) > time.Hour || ci.Role != "admin" {
		t.Fatalf("created token: %+v", ci)
	}
	if code, b, _ := call(t, a, admin, "POST", "/api/v1/tokens", `{"name":"ci"}`); code != http.StatusConflict {
		t.Fatalf("duplicate name: %d %s", code, b)
	}
	if code, b, _ := call(t, a, admin, "POST", "/api/v1/tokens", `{"name":"has space"}`); code != http.StatusBadRequest {
		t.Fatalf("bad name: %d %s", code, b)
	}
	// The new token works, and is the owner of what it creates; it cannot
	// create a token that outlives it.
	if code, b, _ := call(t, a, ci.Token, "GET", "/api/v1/whoami", ""); code != 200 || !strings.Contains(b, `"ci"`) {
		t.Fatalf("whoami with the new token: %d %s", code, b)
	}
	if code, b, _ := call(t, a, ci.Token, "POST", "/api/v1/tokens", `{"name":"forever","ttl_seconds":0}`); code != http.StatusForbidden || !strings.Contains(b, "outlive") {
		t.Fatalf("an expiring token made a permanent one: %d %s", code, b)
	}
	code, b, _ = call(t, a, ci.Token, "POST", "/api/v1/tokens", `{"name":"ci-sub","ttl_seconds":60}`)
	var sub api.APIToken
	if _ = json.Unmarshal([]byte(b), &sub); code != 201 || sub.Owner != "ci" {
		t.Fatalf("token made by ci: %d %s", code, b)
	}
	code, b, _ = call(t, a, admin, "GET", "/api/v1/tokens", "")
	var list []api.APIToken
	if _ = json.Unmarshal([]byte(b), &list); code != 200 || len(list) != 3 || strings.Contains(b, ci.Token) || strings.Contains(b, "hash") {
		t.Fatalf("list: %d %s", code, b)
	}

	// Expired: 401 "token expired", not "invalid".
	exp := "expired-token-0123456789"
	if err := a.d.Store.CreateAPIToken(context.Background(), store.APIToken{ID: "t-old", Name: "old", Hash: HashToken(exp), Role: "admin", CreatedAt: time.Now().Add(-2 * time.Hour), ExpiresAt: time.Now().Add(-time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if code, b, _ := call(t, a, exp, "GET", "/api/v1/hosts", ""); code != http.StatusUnauthorized || !strings.Contains(b, "token expired") || !strings.Contains(b, "token_expired") {
		t.Fatalf("expired token: %d %s", code, b)
	}

	// Delete by name; the caller's own token only with force.
	if code, b, _ := call(t, a, admin, "DELETE", "/api/v1/tokens/ci-sub", ""); code != 204 {
		t.Fatalf("delete by name: %d %s", code, b)
	}
	if code, b, _ := call(t, a, ci.Token, "DELETE", "/api/v1/tokens/"+ci.ID, ""); code != http.StatusConflict || !strings.Contains(b, "--force") {
		t.Fatalf("delete own token without force: %d %s", code, b)
	}
	if code, b, _ := call(t, a, ci.Token, "DELETE", "/api/v1/tokens/"+ci.ID+"?force=true", ""); code != 204 {
		t.Fatalf("delete own token with force: %d %s", code, b)
	}
	if code, b, _ := call(t, a, ci.Token, "GET", "/api/v1/whoami", ""); code != http.StatusUnauthorized {
		t.Fatalf("a deleted token still works: %d %s", code, b)
	}
	if code, b, _ := call(t, a, admin, "DELETE", "/api/v1/tokens/nope", ""); code != http.StatusNotFound {
		t.Fatalf("delete unknown: %d %s", code, b)
	}
	// admin and the expired "old" remain: admin is the last that works.
	if code, b, _ := call(t, a, admin, "DELETE", "/api/v1/tokens/admin?force=true", ""); code != http.StatusConflict || !strings.Contains(b, "last") {
		t.Fatalf("delete the last working token: %d %s", code, b)
	}
}

// enrollReq is an enrollment body with a fresh NATS key.
func enrollReq(t *testing.T, token, name string, labels map[string]string) string {
	t.Helper()
	kp, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, _ := kp.PublicKey()
	b, _ := json.Marshal(api.EnrollRequest{JoinToken: token, Name: name, Labels: labels, NKey: pub})
	return string(b)
}

func joinTokenVia(t *testing.T, a *API, admin, body string) api.JoinToken {
	t.Helper()
	code, b, _ := call(t, a, admin, "POST", "/api/v1/join-tokens", body)
	var jt api.JoinToken
	if _ = json.Unmarshal([]byte(b), &jt); code != 201 || jt.Token == "" {
		t.Fatalf("join token %s: %d %s", body, code, b)
	}
	return jt
}

// An agent sets only the label keys its join token allows; reserved and
// group-selected keys never; pinned labels win; a refusal enrolls nothing.
func TestEnrollLabelRules(t *testing.T) {
	a, admin := newAPI(t)
	ctx := context.Background()
	if err := a.d.Store.CreateApplication(ctx, api.Application{Name: "shop", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := a.d.Store.CreateGroup(ctx, api.DeploymentGroup{ID: "g-1", App: "shop", Name: "web", Selector: "gantry.env=prod,tier=front", Config: "AllAtOnce"}); err != nil {
		t.Fatal(err)
	}
	plain := joinTokenVia(t, a, admin, `{"max_uses":5}`)
	zone := joinTokenVia(t, a, admin, `{"max_uses":5,"agent_labels":["zone"],"labels":{"role":"web"}}`)

	for _, tc := range []struct {
		name, token string
		labels      map[string]string
		want        []string // in the refusal
	}{
		{"reserved", plain.Token, map[string]string{"gantry.env": "prod", "gantry.group": "web"}, []string{"gantry.env", "gantry.group", "set only by the server"}},
		{"not allowed", plain.Token, map[string]string{"zone": "a"}, []string{"zone", plain.ID, "only: none", "--agent-labels zone"}},
		{"other key", zone.Token, map[string]string{"zone": "a", "rack": "r1"}, []string{"rack", "only: zone"}},
		{"group key", zone.Token, map[string]string{"tier": "front"}, []string{"tier", "shop/web"}},
	} {
		code, b, _ := call(t, a, "", "POST", "/api/v1/enroll", enrollReq(t, tc.token, "h-"+strings.ReplaceAll(tc.name, " ", "-"), tc.labels))
		if code != http.StatusForbidden || !strings.Contains(b, "labels_not_allowed") {
			t.Errorf("%s: %d %s; want 403 labels_not_allowed", tc.name, code, b)
		}
		for _, w := range tc.want {
			if !strings.Contains(b, w) {
				t.Errorf("%s: refusal %s lacks %q", tc.name, b, w)
			}
		}
	}
	hosts, _ := a.d.Store.ListHosts(ctx, true)
	toks, _ := a.d.Store.ListJoinTokens(ctx)
	if len(hosts) != 0 || toks[0].Uses != 0 || toks[1].Uses != 0 {
		t.Fatalf("refused enrollments left %d hosts, token uses %d/%d", len(hosts), toks[0].Uses, toks[1].Uses)
	}

	// Allowed: zone set by the agent; role pinned by the token wins.
	code, b, _ := call(t, a, "", "POST", "/api/v1/enroll", enrollReq(t, zone.Token, "ok-1", map[string]string{"zone": "a", "role": "db"}))
	if code != 201 {
		t.Fatalf("allowed enrollment: %d %s", code, b)
	}
	h, err := a.d.Store.GetHostByName(ctx, "ok-1")
	if err != nil || len(h.Labels) != 2 || h.Labels["zone"] != "a" || h.Labels["role"] != "web" {
		t.Fatalf("labels of ok-1: %v %v", h.Labels, err)
	}

	// Join tokens never let agents set reserved or group-selected keys.
	for _, body := range []string{`{"agent_labels":["gantry.env"]}`, `{"agent_labels":["tier"]}`, `{"agent_labels":["bad key"]}`} {
		if code, b, _ := call(t, a, admin, "POST", "/api/v1/join-tokens", body); code != http.StatusBadRequest || !strings.Contains(b, "agent_labels") {
			t.Errorf("join token %s: %d %s; want 400", body, code, b)
		}
	}
	// Join tokens can be deleted.
	if code, b, _ := call(t, a, admin, "DELETE", "/api/v1/join-tokens/"+plain.ID, ""); code != 204 {
		t.Fatalf("delete join token: %d %s", code, b)
	}
	if code, b, _ := call(t, a, "", "POST", "/api/v1/enroll", enrollReq(t, plain.Token, "late", nil)); code != http.StatusUnauthorized {
		t.Fatalf("enroll with a deleted join token: %d %s", code, b)
	}
}

// A bundle link works while its host is enrolled and stops at once when
// the host is removed.
func TestBundleLinkVoidedByHostRemoval(t *testing.T) {
	a, admin := newAPI(t)
	a.d.Capabilities = deploy.Capabilities{Key: []byte("0123456789abcdef0123456789abcdef")}
	ctx := context.Background()
	addHost(t, a, "h-1", "web-1", nil)
	const digest = "sha256:00"
	if _, err := a.d.Store.PutBlob(ctx, digest, strings.NewReader("bundle bytes")); err != nil {
		t.Fatal(err)
	}
	link := a.d.Capabilities.Path("h-1", digest)
	if code, b, _ := call(t, a, "", "GET", link, ""); code != 200 || b != "bundle bytes" {
		t.Fatalf("link of an enrolled host: %d %s", code, b)
	}
	if code, b, _ := call(t, a, admin, "DELETE", "/api/v1/hosts/web-1", ""); code != 204 {
		t.Fatalf("hosts rm: %d %s", code, b)
	}
	if code, b, _ := call(t, a, "", "GET", link, ""); code != http.StatusForbidden || !strings.Contains(b, "no longer enrolled") {
		t.Fatalf("link of a removed host: %d %s; want 403", code, b)
	}
	if code, _, _ := call(t, a, "", "GET", a.d.Capabilities.Path("h-unknown", digest), ""); code != http.StatusForbidden {
		t.Fatalf("link of an unknown host: %d; want 403", code)
	}
}

// Only admin tokens manage tokens (every token is admin today; a stored
// token of another role shows the check).
func TestTokenRoutesNeedAdmin(t *testing.T) {
	a, _ := newAPI(t)
	viewer := "viewer-token-0123456789"
	if err := a.d.Store.CreateAPIToken(context.Background(), store.APIToken{ID: "t-v", Name: "viewer", Hash: HashToken(viewer), Role: "viewer", CreatedAt: time.Now()}); err != nil {
		t.Fatal(err)
	}
	for _, rt := range a.routes() {
		if !rt.Admin {
			continue
		}
		path := strings.NewReplacer("{token}", "t-1", "{id}", "jt-x").Replace(rt.Path)
		if code, b, _ := call(t, a, viewer, rt.Method, path, `{"name":"x"}`); code != http.StatusForbidden || !strings.Contains(b, "admin token") {
			t.Errorf("%s %s with a viewer token: %d %s; want 403", rt.Method, rt.Path, code, b)
		}
	}
	if code, _, _ := call(t, a, viewer, "GET", "/api/v1/hosts", ""); code != 200 {
		t.Errorf("a viewer token cannot list hosts: %d", code)
	}
}
