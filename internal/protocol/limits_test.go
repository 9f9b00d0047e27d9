package protocol

import (
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/gantry-dev/gantry/api"
)

func TestClip(t *testing.T) {
	s := strings.Repeat("é", 10) // 2 bytes each
	for n := 0; n <= len(s)+1; n++ {
		got := Clip(s, n)
		if len(got) > n || !utf8.ValidString(got) || len(got) < n-1 {
			t.Errorf("Clip(%d): %d bytes, valid %v", n, len(got), utf8.ValidString(got))
		}
	}
}

func TestClipFacts(t *testing.T) {
	ok := api.Facts{Hostname: "web-1", OS: "Debian", Arch: "amd64", CPUs: 4, Addresses: []string{"10.0.0.1", "fe80::1"}}
	if got, clipped := ClipFacts(ok); clipped || fmt.Sprint(got) != fmt.Sprint(ok) {
		t.Errorf("normal facts changed: %+v %v", got, clipped)
	}
	var addrs []string
	for i := range MaxFactAddresses + 10 {
		addrs = append(addrs, fmt.Sprintf("10.0.%d.%d", i/256, i%256))
	}
	addrs[0] = strings.Repeat("1", MaxFactAddress+1)
	big := api.Facts{Hostname: strings.Repeat("h", 10000), Kernel: strings.Repeat("k", MaxFactString+1), CPUs: -1, Addresses: addrs}
	got, clipped := ClipFacts(big)
	if !clipped || len(got.Hostname) != MaxFactString || len(got.Kernel) != MaxFactString || got.CPUs != 0 ||
		len(got.Addresses) != MaxFactAddresses || got.Addresses[0] != "10.0.0.1" {
		t.Errorf("clipped: hostname %d kernel %d cpus %d addresses %d (first %q), clipped %v",
			len(got.Hostname), len(got.Kernel), got.CPUs, len(got.Addresses), got.Addresses[0], clipped)
	}
}

func TestCheckLifecycleEvent(t *testing.T) {
	cases := []struct {
		ev api.LifecycleEvent
		ok bool
	}{
		{api.LifecycleEvent{Name: "ApplicationStart", State: "running"}, true},
		{api.LifecycleEvent{Name: "BeforeInstall", State: "skipped"}, true},
		{api.LifecycleEvent{Name: "", State: "running"}, false},
		{api.LifecycleEvent{Name: "Before Install", State: "running"}, false},
		{api.LifecycleEvent{Name: strings.Repeat("A", MaxEventName+1), State: "running"}, false},
		{api.LifecycleEvent{Name: "X", State: "exploded"}, false},
	}
	for _, c := range cases {
		ev := c.ev
		if err := CheckLifecycleEvent(&ev); (err == nil) != c.ok {
			t.Errorf("%+v: %v, want ok=%v", c.ev, err, c.ok)
		}
	}
	ev := api.LifecycleEvent{Name: "X", State: "failed", LogTail: strings.Repeat("l", MaxLogTail*2), Error: strings.Repeat("e", MaxStatusError*2)}
	if err := CheckLifecycleEvent(&ev); err != nil || len(ev.LogTail) != MaxLogTail || len(ev.Error) != MaxStatusError {
		t.Errorf("cut: %v tail %d error %d", err, len(ev.LogTail), len(ev.Error))
	}
}
