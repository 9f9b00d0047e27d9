package agent

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// killLeftovers kills what is left of executions a previous agent process
// died running: every process whose environment carries one of their
// GANTRY_EXECUTION_ID values (the script's shell dies with the agent, but
// its children may not). Matching on the id, not on a remembered pid, makes
// it safe against pid reuse. Returns how many processes were signalled.
func killLeftovers(ids []string) int {
	if len(ids) == 0 {
		return 0
	}
	want := map[string]bool{}
	for _, id := range ids {
		want["GANTRY_EXECUTION_ID="+id] = true
	}
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	self := os.Getpid()
	n := 0
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid == self {
			continue
		}
		env, err := os.ReadFile(filepath.Join("/proc", e.Name(), "environ"))
		if err != nil {
			continue
		}
		for _, kv := range bytes.Split(env, []byte{0}) {
			if want[string(kv)] {
				if syscall.Kill(pid, syscall.SIGKILL) == nil {
					n++
				}
				break
			}
		}
	}
	return n
}
