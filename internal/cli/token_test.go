package cli

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"

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
	f.gantry(t, nil, "token", "ls").expect(t, 0, "No join tokens.")
	f.gantry(t, nil, "token", "create", "--uses", "0").expect(t, 0)
	r := f.gantry(t, nil, "token", "ls")
	r.expect(t, 0, "ID", "USES", "EXPIRES", "jt1", "0/unlimited", "in 1h")
	if strings.Contains(r.stdout, "gjt_secret") {
		t.Errorf("token ls shows a secret: %s", r.stdout)
	}
}
