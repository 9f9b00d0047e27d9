// Package golden compares test output with golden files under testdata/.
// Run a package's tests with -update to rewrite its golden files from the
// current output (then review the diff: golden files are the contract).
// Only tests import it.
package golden

import (
	"flag"
	"os"
	"testing"
)

var update = flag.Bool("update", false, "rewrite golden files from the current output")

// Check fails t unless got equals the content of the golden file at path;
// with -update it writes got there instead.
func Check(t *testing.T, path, got string) {
	t.Helper()
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (go test -update writes it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs:\n--- got ---\n%s--- want ---\n%s", path, got, want)
	}
}
