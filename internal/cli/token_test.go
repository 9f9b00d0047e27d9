package cli

import (
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
)

func TestTokenCreate(t *testing.T) {
	f := newFakeServer(t)
	r := f.gantry(t, nil, "token", "create", "--ttl", "90m", "--uses", "3", "--labels", "env=prod, role=web")
	r.expect(t, 0, "Token:", "gjt_secret", "Uses:", "0/3", "env=prod, role=web", "(in 1h)",
		"GANTRY_JOIN_TOKEN=gjt_secret gantry agent --server "+f.URL)
	var req api.CreateJoinTokenRequest
	_, body := f.lastRequest()
	_ = json.Unmarshal([]byte(body), &req)
	if !reflect.DeepEqual(req, api.CreateJoinTokenRequest{TTLSeconds: 5400, MaxUses: 3, Labels: map[string]string{"env": "prod", "role": "web"}}) {
		t.Errorf("request body %s", body)
	}

	r = f.gantry(t, nil, "token", "create", "-o", "json")
	var jt api.JoinToken
	if err := json.Unmarshal([]byte(r.stdout), &jt); err != nil || jt.Token != "gjt_secret" || jt.MaxUses != 1 {
		t.Errorf("json: %v %q", err, r.stdout)
	}
	if strings.Contains(r.stdout, "gantry agent") {
		t.Errorf("JSON output must be JSON only: %q", r.stdout)
	}
	if _, body := f.lastRequest(); !strings.Contains(body, `"ttl_seconds":3600`) {
		t.Errorf("default ttl: %s", body)
	}
}

func TestTokenList(t *testing.T) {
	f := newFakeServer(t)
	f.gantry(t, nil, "token", "ls", "--join").expect(t, 0, "No tokens.")
	f.gantry(t, nil, "token", "create", "--uses", "0").expect(t, 0)
	r := f.gantry(t, nil, "token", "ls")
	r.expect(t, 0, "KIND", "ID", "USES", "EXPIRES", "join", "jt1", "0/unlimited", "in 1h")
	if strings.Contains(r.stdout, "gjt_secret") {
		t.Errorf("token ls shows a secret: %s", r.stdout)
	}
}

// apiTokenRoute serves the token routes of the fake server (f.mu held).
func (f *fakeServer) apiTokenRoute(w http.ResponseWriter, r *http.Request, route string, parts []string, body []byte) {
	switch route {
	case "POST tokens":
		var req api.CreateAPITokenRequest
		_ = json.Unmarshal(body, &req)
		t := api.APIToken{ID: "t" + strconv.Itoa(len(f.apiTokens)+2), Name: req.Name, Token: "gat_secret", Role: "admin", Owner: "admin", CreatedAt: time.Now()}
		if req.TTLSeconds > 0 {
			exp := time.Now().Add(time.Duration(req.TTLSeconds) * time.Second)
			t.ExpiresAt = &exp
		}
		f.apiTokens = append(f.apiTokens, t)
		reply(w, 201, t)
	case "GET tokens":
		out := []api.APIToken{{ID: "t1", Name: "admin", Role: "admin", CreatedAt: time.Now().Add(-time.Hour)}}
		for _, t := range f.apiTokens {
			t.Token = ""
			out = append(out, t)
		}
		reply(w, 200, out)
	case "DELETE tokens/{}":
		if (parts[1] == "t1" || parts[1] == "admin") && r.URL.Query().Get("force") != "true" {
			reply(w, 409, api.Error{Error: "token \"admin\" is the one this request uses: pass --force", Code: "own_token"})
			return
		}
		for i, t := range f.apiTokens {
			if t.ID == parts[1] || t.Name == parts[1] {
				f.apiTokens = append(f.apiTokens[:i], f.apiTokens[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		reply(w, 404, api.Error{Error: "API token \"" + parts[1] + "\": not found", Code: "not_found"})
	case "DELETE join-tokens/{}":
		for i, t := range f.tokens {
			if t.ID == parts[1] {
				f.tokens = append(f.tokens[:i], f.tokens[i+1:]...)
				w.WriteHeader(204)
				return
			}
		}
		reply(w, 404, api.Error{Error: "join token not found", Code: "not_found"})
	}
}

func TestAPITokenCreateListRemove(t *testing.T) {
	f := newFakeServer(t)
	f.gantry(t, nil, "token", "create", "--api").expect(t, 2, "--name")
	f.gantry(t, nil, "token", "create", "--api", "--name", "ci", "--labels", "a=b").expect(t, 2, "join tokens")
	f.gantry(t, nil, "token", "create", "--name", "ci").expect(t, 2, "--api")
	r := f.gantry(t, nil, "token", "create", "--api", "--name", "ci")
	r.expect(t, 0, "Token:", "gat_secret", "Name:", "ci", "Owner:", "admin", "(in 30d)", "gantry token rm ci")
	if _, body := f.lastRequest(); !strings.Contains(body, `"ttl_seconds":2592000`) {
		t.Errorf("default API token ttl: %s", body)
	}
	f.gantry(t, nil, "token", "create", "--api", "--name", "forever", "--ttl", "0").expect(t, 0, "Expires:", "never")
	f.gantry(t, nil, "token", "create", "--labels", "role=web", "--agent-labels", "zone, rack").expect(t, 0, "Agent labels:", "zone, rack")

	r = f.gantry(t, nil, "token", "ls")
	r.expect(t, 0, "KIND", "OWNER", "api", "join", "ci", "forever", "never", "role=web agent:zone,rack")
	if strings.Contains(r.stdout, "gat_secret") {
		t.Errorf("token ls shows a secret: %s", r.stdout)
	}
	r = f.gantry(t, nil, "token", "ls", "--api", "-o", "json")
	var items []tokenItem
	if err := json.Unmarshal([]byte(r.stdout), &items); err != nil || len(items) != 3 || items[0].Kind != "api" || items[1].Name != "ci" {
		t.Fatalf("ls --api -o json: %v %s", err, r.stdout)
	}
	if strings.Contains(f.gantry(t, nil, "token", "ls", "--join").stdout, "forever") {
		t.Errorf("ls --join lists API tokens")
	}

	f.mu.Lock()
	f.tokens[0].ID = "jt-1" // real join token ids have the jt- prefix that rm goes by
	f.mu.Unlock()
	f.gantry(t, nil, "token", "rm", "ci", "jt-1").expect(t, 0, "Removed API token ci", "Removed join token jt-1")
	f.mu.Lock()
	if len(f.tokens) != 0 || len(f.apiTokens) != 1 {
		t.Errorf("after rm: %d join tokens, %d API tokens; want 0 and 1", len(f.tokens), len(f.apiTokens))
	}
	f.mu.Unlock()
	r = f.gantry(t, nil, "token", "rm", "forever", "-o", "json")
	var removed []tokenRemoved
	if err := json.Unmarshal([]byte(r.stdout), &removed); err != nil || len(removed) != 1 || removed[0] != (tokenRemoved{Kind: "api", Ref: "forever"}) {
		t.Fatalf("rm -o json: %v %q", err, r.stdout)
	}
	f.gantry(t, nil, "token", "rm", "admin").expect(t, 1, "--force")
	f.gantry(t, nil, "token", "rm", "nope").expect(t, 1, "not found")
	f.gantry(t, nil, "token", "rm").expect(t, 2, "missing")
}
