package storetest

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/store"
)

// lifecycleTests cover the end of objects' lives: removing applications,
// groups and machine join tokens, and changing schedules.
var lifecycleTests = []test{
	{"Lifecycle/DeleteGroup", testDeleteGroup},
	{"Lifecycle/DeleteGroupRefusedWhileDeploying", testDeleteGroupActive},
	{"Lifecycle/DeleteApplication", testDeleteApplication},
	{"Lifecycle/DeleteApplicationRefusedWhileDeploying", testDeleteApplicationActive},
	{"Lifecycle/JoinTokenOwner", testJoinTokenOwner},
	{"Lifecycle/UpdateSchedule", testUpdateSchedule},
}

// finishDeployment moves a deployment to succeeded, with host a
// succeeded (so the group has host revisions).
func finishDeployment(t *testing.T, s store.Store, id string) {
	t.Helper()
	ctx := t.Context()
	ok(t, s.UpdateDeploymentHosts(ctx, []store.DeploymentHostUpdate{{DeploymentID: id, HostID: "id-a", State: api.HostDeploySucceeded}}), "UpdateDeploymentHosts %s", id)
	ok(t, s.UpdateDeployment(ctx, store.DeploymentUpdate{ID: id, State: ptr(api.DeploySucceeded), FinishedAt: ptr(at(time.Hour))}), "UpdateDeployment %s", id)
}

func testDeleteGroup(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	createDeployment(t, s, deployment("d1", time.Second), "a")
	finishDeployment(t, s, "d1")
	createDeployment(t, s, inGroup2(deployment("d2", 2*time.Second)), "a")
	finishDeployment(t, s, "d2")
	if revs, err := s.HostRevisions(ctx, "g1"); err != nil || len(revs) != 1 {
		t.Fatalf("HostRevisions before = %v, %v; want one", revs, err)
	}

	ok(t, s.DeleteGroup(ctx, "web", "prod"), "DeleteGroup prod")
	isErr(t, getErr(s.GetGroup(ctx, "web", "prod")), store.ErrNotFound, "GetGroup of the deleted group")
	isErr(t, getErr(s.GetDeployment(ctx, "d1")), store.ErrNotFound, "GetDeployment of the deleted group's deployment")
	revs, err := s.HostRevisions(ctx, "g1")
	ok(t, err, "HostRevisions after")
	if len(revs) != 0 {
		t.Errorf("HostRevisions of the deleted group = %v, want none", revs)
	}
	// The other group and its deployment stay.
	_, err = s.GetGroup(ctx, "web", "staging")
	ok(t, err, "GetGroup staging")
	_, err = s.GetDeployment(ctx, "d2")
	ok(t, err, "GetDeployment d2")
	ds, err := s.ListDeployments(ctx, "web", 10)
	ok(t, err, "ListDeployments")
	same(t, depIDs(ds), "d2", "deployments left")

	isErr(t, s.DeleteGroup(ctx, "web", "prod"), store.ErrNotFound, "DeleteGroup again")
	isErr(t, s.DeleteGroup(ctx, "nope", "staging"), store.ErrNotFound, "DeleteGroup of a missing application")
	// The name is free again.
	ok(t, s.CreateGroup(ctx, group("g3", "prod")), "CreateGroup prod again")
}

func testDeleteGroupActive(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	createDeployment(t, s, deployment("d1", time.Second), "a")
	err := s.DeleteGroup(ctx, "web", "prod")
	isErr(t, err, store.ErrConflict, "DeleteGroup while d1 runs")
	if !strings.Contains(err.Error(), "d1") {
		t.Errorf("refusal %q does not name the deployment d1", err)
	}
	_, err = s.GetGroup(ctx, "web", "prod")
	ok(t, err, "GetGroup after the refusal")
	// Another group of the application is free to go.
	ok(t, s.DeleteGroup(ctx, "web", "staging"), "DeleteGroup staging")
	finishDeployment(t, s, "d1")
	ok(t, s.DeleteGroup(ctx, "web", "prod"), "DeleteGroup once d1 finished")
}

// putBlob stores data and returns its digest.
func putBlob(t *testing.T, s store.Store, digest, data string) {
	t.Helper()
	_, err := s.PutBlob(t.Context(), digest, strings.NewReader(data))
	ok(t, err, "PutBlob %s", digest)
}

func testDeleteApplication(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	ok(t, s.CreateApplication(ctx, api.Application{Name: "api", CreatedAt: t0}), "CreateApplication api")
	putBlob(t, s, "sha256:own", "only web's bundle")
	putBlob(t, s, "sha256:shared", "a bundle both push")
	ok(t, s.CreateRevision(ctx, api.Revision{ID: "r-1", App: "web", Digest: "sha256:own", Size: 17, CreatedAt: at(time.Second)}), "CreateRevision r-1")
	ok(t, s.CreateRevision(ctx, api.Revision{ID: "r-2", App: "web", Digest: "sha256:shared", Size: 18, CreatedAt: at(2 * time.Second)}), "CreateRevision r-2")
	ok(t, s.CreateRevision(ctx, api.Revision{ID: "r-2", App: "api", Digest: "sha256:shared", Size: 18, CreatedAt: at(2 * time.Second)}), "CreateRevision api r-2")
	createDeployment(t, s, deployment("d1", time.Second), "a")
	finishDeployment(t, s, "d1")

	ok(t, s.DeleteApplication(ctx, "web"), "DeleteApplication web")
	isErr(t, getErr(s.GetApplication(ctx, "web")), store.ErrNotFound, "GetApplication of the deleted application")
	isErr(t, getErr(s.GetGroup(ctx, "web", "staging")), store.ErrNotFound, "GetGroup of the deleted application")
	isErr(t, getErr(s.GetDeployment(ctx, "d1")), store.ErrNotFound, "GetDeployment of the deleted application")
	isErr(t, getErr(s.GetRevision(ctx, "web", "r-1")), store.ErrNotFound, "GetRevision of the deleted application")
	if _, _, err := s.OpenBlob(ctx, "sha256:own"); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("OpenBlob of the deleted application's own bundle: %v, want ErrNotFound", err)
	}
	rc, _, err := s.OpenBlob(ctx, "sha256:shared")
	ok(t, err, "OpenBlob of the bundle api still uses")
	b, err := io.ReadAll(rc)
	rc.Close()
	ok(t, err, "read the shared bundle")
	if !bytes.Equal(b, []byte("a bundle both push")) {
		t.Errorf("shared bundle = %q", b)
	}
	gs, err := s.ListGroups(ctx, "")
	ok(t, err, "ListGroups")
	if len(gs) != 0 {
		t.Errorf("groups left: %+v", gs)
	}
	isErr(t, s.DeleteApplication(ctx, "web"), store.ErrNotFound, "DeleteApplication again")
	// The name is free again, with nothing of the old one.
	ok(t, s.CreateApplication(ctx, api.Application{Name: "web", CreatedAt: at(time.Hour)}), "CreateApplication web again")
	revs, err := s.ListRevisions(ctx, "web")
	ok(t, err, "ListRevisions of the new web")
	if len(revs) != 0 {
		t.Errorf("the new web has the old revisions: %+v", revs)
	}
}

func testDeleteApplicationActive(t *testing.T, s store.Store) {
	ctx := t.Context()
	setupGroups(t, s)
	createDeployment(t, s, inGroup2(deployment("d1", time.Second)), "a")
	err := s.DeleteApplication(ctx, "web")
	isErr(t, err, store.ErrConflict, "DeleteApplication while d1 runs")
	if !strings.Contains(err.Error(), "d1") {
		t.Errorf("refusal %q does not name the deployment d1", err)
	}
	_, err = s.GetGroup(ctx, "web", "prod")
	ok(t, err, "GetGroup after the refusal")
	finishDeployment(t, s, "d1")
	ok(t, s.DeleteApplication(ctx, "web"), "DeleteApplication once d1 finished")
}

func testJoinTokenOwner(t *testing.T, s store.Store) {
	ctx := t.Context()
	mk := func(id, owner string, internal bool) store.JoinTokenRecord {
		return store.JoinTokenRecord{Hash: "hash-" + id, JoinToken: api.JoinToken{ID: id, Labels: map[string]string{}, ExpiresAt: at(time.Hour),
			MaxUses: 1, CreatedAt: at(time.Second), Internal: internal, Owner: owner}}
	}
	ok(t, s.CreateJoinToken(ctx, mk("jt-user", "", false)), "CreateJoinToken user")
	ok(t, s.CreateJoinToken(ctx, mk("jt-m0", "env:dev/group.web[0]", true)), "CreateJoinToken m0")
	ok(t, s.CreateJoinToken(ctx, mk("jt-m1", "env:dev/group.web[1]", true)), "CreateJoinToken m1")
	ok(t, s.CreateJoinToken(ctx, mk("jt-m1b", "env:dev/group.web[1]", true)), "CreateJoinToken m1b")

	got, err := s.GetJoinTokenByHash(ctx, "hash-jt-m0")
	ok(t, err, "GetJoinTokenByHash")
	if !got.Internal || got.Owner != "env:dev/group.web[0]" {
		t.Errorf("GetJoinTokenByHash = internal %v owner %q", got.Internal, got.Owner)
	}
	n, err := s.DeleteJoinTokensOf(ctx, "env:dev/group.web[1]")
	ok(t, err, "DeleteJoinTokensOf")
	if n != 2 {
		t.Errorf("DeleteJoinTokensOf removed %d, want 2", n)
	}
	n, err = s.DeleteJoinTokensOf(ctx, "")
	ok(t, err, "DeleteJoinTokensOf(\"\")")
	if n != 0 {
		t.Errorf("DeleteJoinTokensOf(\"\") removed %d user tokens, want 0", n)
	}
	ts, err := s.ListJoinTokens(ctx)
	ok(t, err, "ListJoinTokens")
	var ids []string
	for _, jt := range ts {
		ids = append(ids, jt.ID)
		if jt.ID == "jt-user" && (jt.Internal || jt.Owner != "") {
			t.Errorf("user token listed as internal %v owner %q", jt.Internal, jt.Owner)
		}
	}
	same(t, strings.Join(ids, ","), "jt-m0,jt-user", "tokens left")
	// A deleted token no longer enrolls.
	isErr(t, s.EnrollHost(ctx, "hash-jt-m1", at(time.Minute), store.HostRecord{NKey: "UNK1", Host: api.Host{ID: "h-1", Name: "dev-web-1"}}),
		store.ErrNotFound, "EnrollHost with a deleted machine token")
}

func testUpdateSchedule(t *testing.T, s store.Store) {
	ctx := t.Context()
	sch := api.Schedule{ID: "s-1", Cron: "0 3 * * *", Selector: "role=db", Script: "backup", Concurrency: 2, TimeoutSeconds: 60, User: "root",
		CreatedAt: t0, NextRunAt: ptr(at(time.Hour))}
	ok(t, s.CreateSchedule(ctx, sch), "CreateSchedule")
	ran, err := s.MarkScheduleRun(ctx, "s-1", at(time.Minute), "j-1")
	ok(t, err, "MarkScheduleRun")
	if !ran {
		t.Fatal("MarkScheduleRun = false")
	}
	got, err := s.GetSchedule(ctx, "s-1")
	ok(t, err, "GetSchedule")
	if got.Disabled || got.UpdatedAt != nil {
		t.Errorf("new schedule: disabled %v updated_at %v, want enabled and never updated", got.Disabled, got.UpdatedAt)
	}
	up := got
	up.Cron, up.Selector, up.Script, up.Concurrency, up.TimeoutSeconds, up.User = "*/5 * * * *", "role=web", "check", 0, 30, ""
	up.Disabled, up.UpdatedAt = true, ptr(at(2*time.Minute))
	ok(t, s.UpdateSchedule(ctx, up), "UpdateSchedule")
	got, err = s.GetSchedule(ctx, "s-1")
	ok(t, err, "GetSchedule after update")
	want := up
	want.CreatedAt, want.UpdatedAt, want.LastRunAt = utc(t0), ptr(utc(at(2*time.Minute))), ptr(utc(at(time.Minute)))
	want.NextRunAt = ptr(utc(at(time.Hour)))
	same(t, got, want, "schedule after update (runs kept)")
	isErr(t, s.UpdateSchedule(ctx, api.Schedule{ID: "s-nope", Cron: "@daily"}), store.ErrNotFound, "UpdateSchedule of a missing schedule")
}

// getErr returns the error of a (value, error) pair.
func getErr[T any](_ T, err error) error { return err }
