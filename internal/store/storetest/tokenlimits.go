package storetest

import (
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var tokenLimitTests = []test{
	{"APITokens/OwnerExpiryListDelete", testAPITokenLifecycle},
	{"JoinTokens/AgentLabelsGetDelete", testJoinTokenAgentLabels},
}

func testAPITokenLifecycle(t *testing.T, s store.Store) {
	ctx := t.Context()
	ts, err := s.ListAPITokens(ctx)
	ok(t, err, "ListAPITokens on an empty store")
	if len(ts) != 0 {
		t.Fatalf("ListAPITokens on an empty store = %+v", ts)
	}
	root := store.APIToken{ID: "t-root", Name: "admin", Hash: "hash-root", Role: "admin", CreatedAt: at(2 * time.Second)}
	ci := store.APIToken{ID: "t-ci", Name: "ci", Hash: "hash-ci", Role: "admin", CreatedAt: at(time.Second),
		Owner: "admin", ExpiresAt: at(time.Hour)}
	ok(t, s.CreateAPIToken(ctx, root), "CreateAPIToken root")
	ok(t, s.CreateAPIToken(ctx, ci), "CreateAPIToken ci")

	got, err := s.GetAPITokenByHash(ctx, "hash-ci")
	ok(t, err, "GetAPITokenByHash")
	want := ci
	want.CreatedAt, want.ExpiresAt = utc(ci.CreatedAt), utc(ci.ExpiresAt)
	same(t, got, want, "token with owner and expiry")
	if got.Expired(at(time.Hour-time.Nanosecond)) || !got.Expired(at(time.Hour)) {
		t.Fatalf("Expired: a token expires exactly at ExpiresAt")
	}
	wantRoot := root
	wantRoot.CreatedAt = utc(root.CreatedAt)
	if g, _ := s.GetAPITokenByHash(ctx, "hash-root"); !g.ExpiresAt.IsZero() || g.Expired(at(1000*time.Hour)) {
		t.Fatalf("a token without expiry: %+v", g)
	}

	ts, err = s.ListAPITokens(ctx)
	ok(t, err, "ListAPITokens")
	same(t, ts, []store.APIToken{want, wantRoot}, "ListAPITokens (oldest first)")

	ok(t, s.DeleteAPIToken(ctx, "t-ci"), "DeleteAPIToken")
	_, err = s.GetAPITokenByHash(ctx, "hash-ci")
	isErr(t, err, store.ErrNotFound, "GetAPITokenByHash of a deleted token")
	isErr(t, s.DeleteAPIToken(ctx, "t-ci"), store.ErrNotFound, "DeleteAPIToken twice")
	n, err := s.CountAPITokens(ctx)
	ok(t, err, "CountAPITokens")
	if n != 1 {
		t.Fatalf("CountAPITokens after delete = %d, want 1", n)
	}
}

func testJoinTokenAgentLabels(t *testing.T, s store.Store) {
	ctx := t.Context()
	tok := store.JoinTokenRecord{Hash: "hash-j1", JoinToken: api.JoinToken{ID: "jt-1", Labels: map[string]string{"role": "web"},
		AgentLabels: []string{"rack", "zone"}, ExpiresAt: at(time.Hour), MaxUses: 2, CreatedAt: t0}}
	plain := store.JoinTokenRecord{Hash: "hash-j2", JoinToken: api.JoinToken{ID: "jt-2", ExpiresAt: at(time.Hour), MaxUses: 1, CreatedAt: at(time.Second)}}
	ok(t, s.CreateJoinToken(ctx, tok), "CreateJoinToken with agent labels")
	ok(t, s.CreateJoinToken(ctx, plain), "CreateJoinToken without agent labels")

	got, err := s.GetJoinTokenByHash(ctx, "hash-j1")
	ok(t, err, "GetJoinTokenByHash")
	want := tok
	want.ExpiresAt, want.CreatedAt = utc(tok.ExpiresAt), utc(tok.CreatedAt)
	same(t, got, want, "GetJoinTokenByHash")
	got, err = s.GetJoinTokenByHash(ctx, "hash-j2")
	ok(t, err, "GetJoinTokenByHash plain")
	if got.AgentLabels != nil || len(got.Labels) != 0 {
		t.Fatalf("a token without labels: labels %v agent labels %#v", got.Labels, got.AgentLabels)
	}
	_, err = s.GetJoinTokenByHash(ctx, "hash-x")
	isErr(t, err, store.ErrNotFound, "GetJoinTokenByHash of an unknown hash")

	ts, err := s.ListJoinTokens(ctx)
	ok(t, err, "ListJoinTokens")
	if len(ts) != 2 || len(ts[0].AgentLabels) != 2 || ts[0].AgentLabels[1] != "zone" {
		t.Fatalf("ListJoinTokens: %+v", ts)
	}

	// A deleted token enrolls nobody; hosts enrolled with it stay.
	h := hostRec("h1", "web1")
	ok(t, s.EnrollHost(ctx, "hash-j1", t0, h), "EnrollHost")
	ok(t, s.DeleteJoinToken(ctx, "jt-1"), "DeleteJoinToken")
	isErr(t, s.EnrollHost(ctx, "hash-j1", t0, hostRec("h2", "web2")), store.ErrNotFound, "EnrollHost with a deleted token")
	isErr(t, s.DeleteJoinToken(ctx, "jt-1"), store.ErrNotFound, "DeleteJoinToken twice")
	if _, err := s.GetHost(ctx, "h1"); err != nil {
		t.Fatalf("host enrolled with a deleted token: %v", err)
	}
}
