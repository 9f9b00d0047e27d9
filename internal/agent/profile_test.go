package agent

import (
	"fmt"
	"os"
	"testing"
)

// TestProfileCommands is a by-hand profiling aid (GANTRY_PROFILE=1).
func TestProfileCommands(t *testing.T) {
	if os.Getenv("GANTRY_PROFILE") == "" {
		t.Skip("set GANTRY_PROFILE=1")
	}
	r := newRig(t)
	for i := 0; i < 300; i++ {
		c := r.command(fmt.Sprintf("x-%d", i), "p")
		c.Exec.Script = "hostname"
		r.publish(r.signed(c))
		r.next()
	}
}
