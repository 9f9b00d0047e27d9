package agent

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"syscall"
	"testing"

	"github.com/gantry-dev/gantry/internal/testenv/fulldisk"
)

// A full disk while the identity is saved: a clear error, and the previous
// identity intact and usable (the agent loads it).
func TestSaveIdentityFullDisk(t *testing.T) {
	good := Identity{HostID: "h-good", Name: "web-1", Server: "https://gantry.example:7070", Seed: "SUAGOOD", ServerKey: "OKEY",
		NATSURLs: []string{"tls://gantry.example:4222"}, HeartbeatMillis: 5000}
	var path string
	dir := fulldisk.New(t, func(dir string) {
		path = filepath.Join(dir, "identity.json")
		if err := saveIdentity(path, good); err != nil {
			t.Fatal(err)
		}
	})
	next := good
	next.HostID, next.Seed = "h-next", strings.Repeat("S", 8<<10)
	err := saveIdentity(path, next)
	if !errors.Is(err, syscall.ENOSPC) || !strings.Contains(err.Error(), "save the agent's identity") || !strings.Contains(err.Error(), path) {
		t.Fatalf("err = %v, want a no-space error saying the identity was not saved, naming %s", err, path)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got Identity
	if err := json.Unmarshal(b, &got); err != nil || !reflect.DeepEqual(got, good) {
		t.Fatalf("identity after the failed save: %+v %v\n%s\nwant %+v", got, err, b, good)
	}
	loaded, err := Enroll(context.Background(), Config{DataDir: dir})
	if err != nil || !reflect.DeepEqual(loaded, good) {
		t.Fatalf("Enroll loaded %+v, %v; want the previous identity", loaded, err)
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 2 {
		t.Errorf("the failed save left files behind: %v", ents)
	}
}
