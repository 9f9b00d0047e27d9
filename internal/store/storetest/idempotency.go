package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/internal/store"
)

var idempotencyTests = []test{
	{"Idempotency/ClaimFinishReplay", testIdempotencyClaim},
	{"Idempotency/ReleaseAndExpiry", testIdempotencyRelease},
	{"Idempotency/ConcurrentClaims", testIdempotencyConcurrent},
}

func idemKey(caller, key, hash string) store.IdempotencyKey {
	return store.IdempotencyKey{Caller: caller, Key: key, RequestHash: hash, CreatedAt: t0, ExpiresAt: at(24 * time.Hour)}
}

func testIdempotencyClaim(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := idemKey("t-a", "key-1", "hash-1")
	got, claimed, err := s.ClaimIdempotencyKey(ctx, k, t0)
	ok(t, err, "first claim")
	if !claimed || got.ResourceID != "" {
		t.Fatalf("first claim: claimed %v record %+v", claimed, got)
	}
	// While the first request runs, a second claim sees it unfinished.
	other := k
	other.RequestHash = "hash-2"
	got, claimed, err = s.ClaimIdempotencyKey(ctx, other, at(time.Second))
	ok(t, err, "second claim")
	if claimed || got.RequestHash != "hash-1" || got.ResourceID != "" {
		t.Fatalf("second claim while running: claimed %v record %+v", claimed, got)
	}
	ok(t, s.FinishIdempotencyKey(ctx, "t-a", "key-1", "j-1", 201), "FinishIdempotencyKey")
	got, claimed, err = s.ClaimIdempotencyKey(ctx, k, at(time.Minute))
	ok(t, err, "claim after finish")
	want := k
	want.ResourceID, want.Status = "j-1", 201
	want.CreatedAt, want.ExpiresAt = utc(k.CreatedAt), utc(k.ExpiresAt)
	if claimed {
		t.Fatalf("a finished key was claimed again")
	}
	same(t, got, want, "record after finish")

	// Keys are per caller.
	_, claimed, err = s.ClaimIdempotencyKey(ctx, idemKey("t-b", "key-1", "hash-1"), at(time.Minute))
	ok(t, err, "claim by another caller")
	if !claimed {
		t.Fatalf("another caller's key of the same name was not claimable")
	}
	isErr(t, s.FinishIdempotencyKey(ctx, "t-c", "nope", "j", 201), store.ErrNotFound, "FinishIdempotencyKey of an unknown key")
}

func testIdempotencyRelease(t *testing.T, s store.Store) {
	ctx := t.Context()
	k := idemKey("t-a", "key-1", "hash-1")
	_, _, err := s.ClaimIdempotencyKey(ctx, k, t0)
	ok(t, err, "claim")
	ok(t, s.ReleaseIdempotencyKey(ctx, "t-a", "key-1"), "release")
	if _, claimed, err := s.ClaimIdempotencyKey(ctx, k, t0); err != nil || !claimed {
		t.Fatalf("claim after release: claimed %v err %v", claimed, err)
	}
	ok(t, s.FinishIdempotencyKey(ctx, "t-a", "key-1", "j-1", 201), "finish")
	ok(t, s.ReleaseIdempotencyKey(ctx, "t-a", "key-1"), "release of a finished key")
	if got, claimed, err := s.ClaimIdempotencyKey(ctx, k, t0); err != nil || claimed || got.ResourceID != "j-1" {
		t.Fatalf("a finished key must survive release: claimed %v %+v err %v", claimed, got, err)
	}
	ok(t, s.ReleaseIdempotencyKey(ctx, "t-x", "missing"), "release of a missing key")

	// Expired records are replaced by a new claim and purged.
	_, _, err = s.ClaimIdempotencyKey(ctx, idemKey("t-a", "key-2", "hash-2"), t0)
	ok(t, err, "claim key-2")
	renewed := idemKey("t-a", "key-1", "hash-9")
	renewed.CreatedAt, renewed.ExpiresAt = at(24*time.Hour), at(48*time.Hour)
	if _, claimed, err := s.ClaimIdempotencyKey(ctx, renewed, at(24*time.Hour)); err != nil || !claimed {
		t.Fatalf("claim of an expired key: claimed %v err %v", claimed, err)
	}
	n, err := s.PurgeIdempotencyKeys(ctx, at(24*time.Hour))
	ok(t, err, "purge")
	if n != 1 { // key-2; key-1 was claimed anew
		t.Fatalf("purged %d records, want 1", n)
	}
	if _, claimed, err := s.ClaimIdempotencyKey(ctx, idemKey("t-a", "key-2", "hash-3"), at(24*time.Hour)); err != nil || !claimed {
		t.Fatalf("claim of a purged key: claimed %v err %v", claimed, err)
	}
}

func testIdempotencyConcurrent(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	res := run(n, func(i int) error {
		_, claimed, err := s.ClaimIdempotencyKey(ctx, idemKey("t-a", "race", fmt.Sprint("hash-", i)), t0)
		if err == nil && !claimed {
			return store.ErrConflict
		}
		return err
	})
	wins, losses := countErrs(t, res, store.ErrConflict)
	if wins != 1 || losses != n-1 {
		t.Fatalf("%d concurrent claims of one key: %d won, %d lost; want exactly 1 winner", n, wins, losses)
	}
}
