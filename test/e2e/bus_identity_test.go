package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/gantry-dev/gantry/api"
)

// Bus identity, per message type: with host A's own credentials (its
// identity.json key), no subject and no reply subject lets A affect host B
// (running a job and a deployment) or host S (stopped): S's online state,
// B's and S's facts, B's results, live output and lifecycle progress, and
// B's commands (cancel). A publishes every message type on its own subject
// and on B's and S's, each with no reply subject and with every reply
// subject that names another host's agent, command or inbox subject.
func TestBusIdentity(t *testing.T) {
	c := newCluster(t, clusterOpts{})
	c.deployAgentsOnline(map[string]string{"a": "role=a", "b": "role=b", "s": "role=s"})
	idA, idB, idS := c.identity("a"), c.identity("b"), c.identity("s")
	client := c.apiClient()
	ctx := t.Context()
	hostNow := func(name string) api.Host {
		t.Helper()
		h, err := client.GetHost(ctx, name)
		if err != nil {
			t.Fatalf("host %s: %v", name, err)
		}
		return h
	}
	factsB, factsS := hostNow("b").Facts, hostNow("s").Facts
	if factsB.Hostname == "" || factsS.Hostname == "" {
		t.Fatalf("agents reported no facts: %+v %+v", factsB, factsS)
	}
	c.agents["s"].kill()
	c.waitHost("s", api.HostOffline, 15*time.Second)

	// B runs a job and a deployment step, each until the test releases it.
	rel := t.TempDir()
	r := c.gantry("run", "--selector", "role=b", "--no-wait", "--timeout", "5m", "--",
		fmt.Sprintf(`echo b-start; while [ ! -e '%s/job' ]; do sleep 0.1; done; echo b-end`, rel))
	r.ok(t)
	jobID := regexp.MustCompile(`j-[a-z0-9]+`).FindString(r.stdout)
	var bExec string
	eventually(t, 15*time.Second, "B's job running", func() (bool, string) {
		j := c.job(jobID)
		if len(j.Executions) == 1 && j.Executions[0].State == api.ExecRunning {
			bExec = j.Executions[0].ID
		}
		return bExec != "", fmt.Sprint(j.Counts)
	})
	c.gantry("app", "create", "idapp").ok(t)
	c.createGroup("idapp", "g", "--selector", "role=b", "--config", "AllAtOnce")
	rev := c.push("idapp", bundle("/srv/idapp", map[string]string{"v.txt": "v1\n"}, hook{event: "ApplicationStart", timeout: 300,
		script: fmt.Sprintf(`echo "$GANTRY_EXECUTION_ID" > '%s/depexec.tmp' && mv '%[1]s/depexec.tmp' '%[1]s/depexec'
while [ ! -e '%[1]s/deploy' ]; do sleep 0.1; done`, rel)}))
	depID := c.deployNoWait("deploy", "idapp", "g", "--revision", rev)
	var depExec string
	eventually(t, 30*time.Second, "B's ApplicationStart running", func() (bool, string) {
		b, err := os.ReadFile(filepath.Join(rel, "depexec"))
		depExec = strings.TrimSpace(string(b))
		return err == nil && depExec != "", ""
	})

	// Everything the server tells watchers about B's job and deployment.
	var streamMu sync.Mutex
	var streamed []string
	record := func(v any) error {
		b, _ := json.Marshal(v)
		streamMu.Lock()
		streamed = append(streamed, string(b))
		streamMu.Unlock()
		return nil
	}
	sctx, stopStreams := context.WithCancel(ctx)
	defer stopStreams()
	go func() { _ = client.StreamJob(sctx, jobID, func(ev api.JobEvent) error { return record(ev) }) }()
	go func() {
		_ = client.StreamDeployment(sctx, depID, func(ev api.DeploymentEvent) error { return record(ev) })
	}()

	// Spies with B's and S's own keys: anything unsigned on their command
	// subjects, or anything on the inbox subjects A names as reply, was
	// published by the server on A's behalf.
	var spyMu sync.Mutex
	var spied []string
	for _, id := range []identity{idB, idS} {
		spy, _, err := connectAs(t, id)
		if err != nil {
			t.Fatalf("spy as %s: %v", id.HostID, err)
		}
		for _, subj := range []string{"gantry.cmd." + id.HostID, "_INBOX." + id.HostID + ".rogue"} {
			if _, err := spy.Subscribe(subj, func(m *nats.Msg) {
				if strings.HasPrefix(m.Subject, "gantry.cmd.") && m.Header.Get("Gantry-Sig") != "" {
					return // a command the server signed (a resend)
				}
				spyMu.Lock()
				spied = append(spied, fmt.Sprintf("%s: %s", m.Subject, m.Data))
				spyMu.Unlock()
			}); err != nil {
				t.Fatal(err)
			}
		}
		if err := spy.Flush(); err != nil {
			t.Fatal(err)
		}
	}

	rogue, _, err := connectAs(t, idA)
	if err != nil {
		t.Fatalf("connect with A's identity: %v", err)
	}
	// barrier waits until the server has answered a hello of A's own:
	// the hellos A published before were handled, and the messages of
	// other kinds are being handled.
	barrier := func(t *testing.T) {
		t.Helper()
		if _, err := rogue.Request("gantry.agent."+idA.HostID+".hello", []byte(`{"facts":{"hostname":"a"}}`), 10*time.Second); err != nil {
			t.Fatalf("A's own hello got no answer: %v", err)
		}
	}
	barrier(t)

	// unaffected checks everything A must not be able to change.
	unaffected := func() (bool, string) {
		var bad []string
		if s := hostNow("s"); s.Status != api.HostOffline || !reflect.DeepEqual(s.Facts, factsS) {
			bad = append(bad, fmt.Sprintf("stopped host S: status %s facts %+v", s.Status, s.Facts))
		}
		if b := hostNow("b"); !reflect.DeepEqual(b.Facts, factsB) {
			bad = append(bad, fmt.Sprintf("B's facts: %+v", b.Facts))
		}
		if j, err := client.GetJob(ctx, jobID); err != nil || j.Executions[0].State != api.ExecRunning || strings.Contains(j.Executions[0].Stdout, "FORGED") {
			bad = append(bad, fmt.Sprintf("B's job: %+v %v", j.Executions, err))
		}
		d, err := client.GetDeployment(ctx, depID)
		if err != nil || len(d.Hosts) != 1 || d.Hosts[0].State != api.HostDeployInProgress || d.Hosts[0].Event == "Forged" {
			bad = append(bad, fmt.Sprintf("B's deployment: %+v %v", d.Hosts, err))
		} else if _, forged := event(d.Hosts[0], "Forged"); forged {
			bad = append(bad, fmt.Sprintf("B's deployment events: %+v", d.Hosts[0].Events))
		}
		streamMu.Lock()
		for _, s := range streamed {
			if strings.Contains(s, "FORGED") || strings.Contains(s, "Forged") {
				bad = append(bad, "watchers were sent: "+s)
			}
		}
		streamMu.Unlock()
		spyMu.Lock()
		for _, s := range spied {
			bad = append(bad, "the server published "+s)
		}
		spyMu.Unlock()
		return len(bad) == 0, strings.Join(bad, "\n")
	}
	if ok, why := unaffected(); !ok {
		t.Fatalf("before any attack: %s", why)
	}

	status := func(exec, state string, extra string) []byte {
		return []byte(fmt.Sprintf(`{"exec_id":%q,"state":%q,"exit_code":0,"stdout":"Rk9SR0VECg==","error":"FORGED"%s}`, exec, state, extra))
	}
	output := func(exec, stream string, data []byte) []byte {
		b, _ := json.Marshal(map[string]any{"exec_id": exec, "stream": stream, "seq": 99, "data": data})
		return b
	}
	hosts := []string{idA.HostID, idB.HostID, idS.HostID}
	replies := []string{""}
	for _, h := range []string{idB.HostID, idS.HostID} {
		for _, kind := range []string{"hello", "hb", "status", "out"} {
			replies = append(replies, "gantry.agent."+h+"."+kind)
		}
		replies = append(replies, "gantry.cmd."+h, "_INBOX."+h+".rogue")
	}
	cases := []struct {
		name     string
		subjects []string // where A publishes
		data     []byte
	}{
		{"hello", agentSubjects(hosts, "hello"), []byte(`{"facts":{"hostname":"FORGED"}}`)},
		{"heartbeat", agentSubjects(hosts, "hb"), []byte(`{"seq":1}`)},
		{"status of B's job", agentSubjects(hosts, "status"), status(bExec, api.ExecSucceeded, "")},
		{"status of B's deployment", agentSubjects(hosts, "status"), status(depExec, api.ExecFailed, `,"result":{"succeeded":false,"failed_event":"Forged","events":[]}`)},
		{"output of B's job", agentSubjects(hosts, "out"), output(bExec, "stdout", []byte("FORGED\n"))},
		{"lifecycle progress of B's deployment", agentSubjects(hosts, "out"), output(depExec, "lifecycle", []byte(`{"name":"Forged","state":"failed","error":"FORGED"}`))},
		{"cancel of B's job", []string{"gantry.cmd." + idB.HostID, "gantry.cmd." + idS.HostID, "gantry.agent." + idA.HostID + ".cancel"},
			[]byte(fmt.Sprintf(`{"id":"x-rogue","host_id":%q,"kind":"cancel","cancel":{"exec_id":%q}}`, idB.HostID, bExec))},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			for _, subj := range tc.subjects {
				for _, reply := range replies {
					_ = rogue.PublishMsg(&nats.Msg{Subject: subj, Reply: reply, Data: tc.data})
				}
			}
			if err := rogue.Flush(); err != nil {
				t.Fatal(err)
			}
			barrier(t)
			// Effects of a wrong answer show within milliseconds; S would
			// stay "online" for 3 heartbeats (1.5 s) after a forged one.
			consistently(t, 3*c.heartbeat, "host A's messages left B and S alone", unaffected)
		})
	}

	// Size caps on what a host reports about itself: facts are cut to
	// their caps, and a hello over 64 KiB does not replace them.
	var addrs []string
	for i := range 1000 {
		addrs = append(addrs, fmt.Sprintf("10.1.%d.%d", i/256, i%256))
	}
	hello := func(f api.Facts) {
		t.Helper()
		b, _ := json.Marshal(map[string]any{"facts": f})
		if _, err := rogue.Request("gantry.agent."+idA.HostID+".hello", b, 10*time.Second); err != nil {
			t.Fatalf("A's hello of %d bytes: %v", len(b), err)
		}
	}
	hello(api.Facts{Hostname: strings.Repeat("h", 1000), OS: "capped", Addresses: addrs})
	eventually(t, 5*time.Second, "A's facts stored within their caps", func() (bool, string) {
		a := hostNow("a")
		return a.Facts.OS == "capped" && len(a.Facts.Hostname) == 256 && len(a.Facts.Addresses) == 256,
			fmt.Sprintf("OS %q, hostname %d bytes, %d addresses", a.Facts.OS, len(a.Facts.Hostname), len(a.Facts.Addresses))
	})
	hello(api.Facts{Hostname: strings.Repeat("h", 70<<10), OS: "too big"})
	consistently(t, 3*c.heartbeat, "a hello over 64 KiB leaves A's facts", func() (bool, string) {
		a := hostNow("a")
		return a.Facts.OS == "capped", fmt.Sprintf("OS %q, hostname %d bytes", a.Facts.OS, len(a.Facts.Hostname))
	})

	// Released, B finishes both with its own results.
	for _, f := range []string{"job", "deploy"} {
		if err := os.WriteFile(filepath.Join(rel, f), nil, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var job api.Job
	eventually(t, 30*time.Second, "B's job finished", func() (bool, string) {
		job = c.job(jobID)
		return job.State == api.JobFinished, fmt.Sprint(job.Counts)
	})
	if x := job.Executions[0]; x.State != api.ExecSucceeded || x.Stdout != "b-start\nb-end\n" {
		t.Errorf("B's job: %s stdout %q error %q", x.State, x.Stdout, x.Error)
	}
	d := c.waitDeployment(depID, 60*time.Second)
	if d.State != api.DeploySucceeded {
		t.Errorf("B's deployment: %s %s %+v", d.State, d.Error, d.Hosts)
	}
	if _, forged := event(d.Hosts[0], "Forged"); forged {
		t.Errorf("B's deployment events: %+v", d.Hosts[0].Events)
	}
	if s := hostNow("s"); s.Status != api.HostOffline || !reflect.DeepEqual(s.Facts, factsS) {
		t.Errorf("stopped host S at the end: status %s facts %+v", s.Status, s.Facts)
	}
	if s := c.server.out.String(); !strings.Contains(s, "reply subject outside the host's own inbox") {
		t.Errorf("the server did not log the refused reply subjects:\n%s", s)
	}
}

// agentSubjects is kind's subject of each host.
func agentSubjects(hosts []string, kind string) []string {
	var out []string
	for _, h := range hosts {
		out = append(out, "gantry.agent."+h+"."+kind)
	}
	return out
}

// consistently checks that cond holds, polling, for all of d.
func consistently(t *testing.T, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		if ok, state := cond(); !ok {
			t.Fatalf("%s: broken:\n%s", what, state)
		}
		if time.Now().After(deadline) {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
}
