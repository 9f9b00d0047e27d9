package traffic

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/gantry-dev/gantry/api"
	"github.com/gantry-dev/gantry/internal/protocol"
	"github.com/gantry-dev/gantry/internal/store"
)

type fakeHosts map[string]store.HostRecord

func (f fakeHosts) GetHostByName(_ context.Context, name string) (store.HostRecord, error) {
	h, ok := f[name]
	if !ok {
		return h, store.ErrNotFound
	}
	return h, nil
}

type fakePresence map[string]bool

func (f fakePresence) HostOnline(id string) bool { return f[id] }

// recorder is a fake Requester: it records the command and the time left
// on its context, and answers with reply (or err).
type recorder struct {
	got      []protocol.Command
	deadline time.Duration
	reply    any
	err      error
}

func (r *recorder) Request(ctx context.Context, cmd protocol.Command) ([]byte, error) {
	r.got = append(r.got, cmd)
	if d, ok := ctx.Deadline(); ok {
		r.deadline = time.Until(d)
	}
	if r.err != nil {
		return nil, r.err
	}
	if s, ok := r.reply.(string); ok {
		return []byte(s), nil
	}
	return json.Marshal(r.reply)
}

func newTest(online bool, rec *recorder) *Controller {
	hosts := fakeHosts{"lb1": {Host: api.Host{ID: "h-lb1", Name: "lb1"}}}
	c := New(hosts, fakePresence{"h-lb1": online}, rec)
	now := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	c.now = func() time.Time { return now }
	return c
}

func TestDoSendsSignedCommandToTheHost(t *testing.T) {
	rec := &recorder{reply: protocol.LBResult{Detail: "drained 3 sessions in 2.9s", ElapsedMillis: 2900}}
	c := newTest(true, rec)
	cmd := protocol.LBCommand{Op: protocol.LBDrain, Backend: "web", Server: "web-1", Weight: -1, TimeoutMillis: 30000, Socket: "/run/haproxy.sock"}
	res, err := c.Do(t.Context(), "lb1", cmd)
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if res.Detail != "drained 3 sessions in 2.9s" || res.ElapsedMillis != 2900 {
		t.Fatalf("result %+v", res)
	}
	if len(rec.got) != 1 {
		t.Fatalf("%d requests", len(rec.got))
	}
	pc := rec.got[0]
	if pc.Kind != protocol.CmdLB || pc.HostID != "h-lb1" || pc.ID == "" || pc.LB == nil {
		t.Fatalf("command %+v", pc)
	}
	want := cmd
	want.Driver = "haproxy" // the default
	if !reflect.DeepEqual(*pc.LB, want) {
		t.Fatalf("LB command %+v, want %+v", *pc.LB, want)
	}
	if got, want := pc.ExpiresAt.Sub(pc.IssuedAt), 30*time.Second+Margin; got != want {
		t.Fatalf("command valid for %s, want %s (timeout + margin)", got, want)
	}
	if rec.deadline <= 30*time.Second || rec.deadline > 30*time.Second+Margin {
		t.Fatalf("request waits %s, want just under %s", rec.deadline, 30*time.Second+Margin)
	}
	// Without a timeout of its own an operation waits DefaultTimeout.
	if _, err := c.Do(t.Context(), "lb1", protocol.LBCommand{Op: protocol.LBStatus, Weight: -1}); err != nil {
		t.Fatal(err)
	}
	if got := rec.got[1].ExpiresAt.Sub(rec.got[1].IssuedAt); got != DefaultTimeout+Margin {
		t.Fatalf("status valid for %s, want %s", got, DefaultTimeout+Margin)
	}
	if rec.got[1].ID == pc.ID {
		t.Fatal("two commands share an id")
	}
}

func TestDoRefusesUnknownAndOfflineHosts(t *testing.T) {
	rec := &recorder{reply: protocol.LBResult{}}
	_, err := newTest(true, rec).Do(t.Context(), "nope", protocol.LBCommand{Op: protocol.LBStatus})
	if !errors.Is(err, store.ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("unknown host: %v", err)
	}
	_, err = newTest(false, rec).Do(t.Context(), "lb1", protocol.LBCommand{Op: protocol.LBDrain})
	if !errors.Is(err, ErrOffline) || !strings.Contains(err.Error(), "lb1") {
		t.Fatalf("offline host: %v", err)
	}
	if len(rec.got) != 0 {
		t.Fatalf("a command was sent: %+v", rec.got)
	}
	if _, err := newTest(true, rec).Do(t.Context(), "", protocol.LBCommand{Op: protocol.LBStatus}); err == nil {
		t.Fatal("no host name: no error")
	}
}

func TestDoAnswers(t *testing.T) {
	// The load balancer's refusal is an error, with the result.
	rec := &recorder{reply: protocol.LBResult{Error: "web-1 is the last ready server of web", ElapsedMillis: 3}}
	res, err := newTest(true, rec).Do(t.Context(), "lb1", protocol.LBCommand{Op: protocol.LBDrain})
	if !errors.Is(err, ErrRefused) || !strings.Contains(err.Error(), "last ready server") || res.ElapsedMillis != 3 {
		t.Fatalf("refusal: %+v, %v", res, err)
	}
	// Unreadable answer.
	rec = &recorder{reply: "not json"}
	if _, err := newTest(true, rec).Do(t.Context(), "lb1", protocol.LBCommand{Op: protocol.LBStatus}); err == nil || !strings.Contains(err.Error(), "unreadable") {
		t.Fatalf("unreadable: %v", err)
	}
	// The bus's error (no responders, timeout) names the host.
	rec = &recorder{err: errors.New("nats: no responders available for request")}
	if _, err := newTest(true, rec).Do(t.Context(), "lb1", protocol.LBCommand{Op: protocol.LBStatus}); err == nil || !strings.Contains(err.Error(), "lb1") || !strings.Contains(err.Error(), "no responders") {
		t.Fatalf("bus error: %v", err)
	}
}

func TestView(t *testing.T) {
	rec := &recorder{reply: protocol.LBResult{Servers: []api.LBServerStatus{{Backend: "web", Name: "web-1", Weight: 100, State: api.LBReady, Health: "UP"}}}}
	v, err := newTest(true, rec).View(t.Context(), api.LBTarget{Host: "lb1", Backend: "web", Socket: "/s"})
	if err != nil {
		t.Fatal(err)
	}
	if v.Host != "lb1" || v.Driver != "haproxy" || len(v.Servers) != 1 || v.Servers[0].Name != "web-1" {
		t.Fatalf("view %+v", v)
	}
	if lb := rec.got[0].LB; lb.Op != protocol.LBStatus || lb.Backend != "web" || lb.Socket != "/s" || lb.Weight != -1 {
		t.Fatalf("status command %+v", lb)
	}
}
