package storetest

import (
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

var tokenTests = []test{
	{"APITokens", testAPITokens},
	{"JoinTokens", testJoinTokens},
}

func testAPITokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	n, err := s.CountAPITokens(ctx)
	ok(t, err, "CountAPITokens")
	if n != 0 {
		t.Fatalf("CountAPITokens on an empty store = %d", n)
	}
	a := store.APIToken{ID: "a", Name: "admin", Hash: "hash-a", Role: "admin", CreatedAt: t0}
	b := store.APIToken{ID: "b", Name: "ci", Hash: "hash-b", Role: "admin", CreatedAt: at(time.Hour)}
	ok(t, s.CreateAPIToken(ctx, a), "CreateAPIToken a")
	ok(t, s.CreateAPIToken(ctx, b), "CreateAPIToken b")

	got, err := s.GetAPITokenByHash(ctx, "hash-b")
	ok(t, err, "GetAPITokenByHash")
	b.CreatedAt = utc(b.CreatedAt)
	same(t, got, b, "token")
	_, err = s.GetAPITokenByHash(ctx, "hash-x")
	isErr(t, err, store.ErrNotFound, "GetAPITokenByHash of an unknown hash")

	for _, dup := range []store.APIToken{
		{ID: "c", Name: "dup hash", Hash: "hash-a", Role: "admin"},
		{ID: "a", Name: "dup id", Hash: "hash-c", Role: "admin"},
	} {
		isErr(t, s.CreateAPIToken(ctx, dup), store.ErrConflict, "CreateAPIToken %s", dup.Name)
	}
	n, err = s.CountAPITokens(ctx)
	ok(t, err, "CountAPITokens")
	if n != 2 {
		t.Fatalf("CountAPITokens = %d, want 2", n)
	}
}

func testJoinTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	ts, err := s.ListJoinTokens(ctx)
	ok(t, err, "ListJoinTokens on an empty store")
	if len(ts) != 0 {
		t.Fatalf("ListJoinTokens on an empty store = %+v", ts)
	}
	mk := func(id string, created time.Time, maxUses, uses int, lbl map[string]string) store.JoinTokenRecord {
		return store.JoinTokenRecord{
			JoinToken: api.JoinToken{ID: id, Token: "secret-" + id, Labels: lbl, ExpiresAt: created.Add(time.Hour),
				MaxUses: maxUses, Uses: uses, CreatedAt: created},
			Hash: "hash-" + id,
		}
	}
	toks := []store.JoinTokenRecord{
		mk("c", at(3*time.Second), 0, 0, map[string]string{"env": "dev"}),
		mk("a", at(1*time.Second), 1, 1, nil),
		mk("b", at(2*time.Second), 5, 2, map[string]string{"env": "prod", "zone": "eu"}),
	}
	for _, tok := range toks {
		ok(t, s.CreateJoinToken(ctx, tok), "CreateJoinToken %s", tok.ID)
	}
	dup := mk("d", t0, 1, 0, nil)
	dup.Hash = "hash-a"
	isErr(t, s.CreateJoinToken(ctx, dup), store.ErrConflict, "CreateJoinToken with a duplicate hash")
	isErr(t, s.CreateJoinToken(ctx, mk("a", t0, 1, 0, nil)), store.ErrConflict, "CreateJoinToken with a duplicate id")

	ts, err = s.ListJoinTokens(ctx)
	ok(t, err, "ListJoinTokens")
	var want []api.JoinToken
	for _, i := range []int{1, 2, 0} { // by creation time
		w := toks[i].JoinToken
		w.Token = "" // never stored
		w.ExpiresAt, w.CreatedAt = utc(w.ExpiresAt), utc(w.CreatedAt)
		if w.Labels == nil {
			w.Labels = map[string]string{}
		}
		want = append(want, w)
	}
	same(t, ts, want, "ListJoinTokens")
}
