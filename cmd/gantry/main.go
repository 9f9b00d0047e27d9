// Command gantry is the single binary of the gantry DevOps platform: the
// control-plane server, the host agent and the command-line client.
package main

import (
	"os"

	"github.com/gantry-dev/gantry/internal/cli"

	// The built-in providers of environments as code.
	_ "github.com/gantry-dev/gantry/internal/providers/docker"
	_ "github.com/gantry-dev/gantry/internal/providers/local"
	_ "github.com/gantry-dev/gantry/internal/providers/ssh"
)

func main() { os.Exit(cli.Execute()) }
