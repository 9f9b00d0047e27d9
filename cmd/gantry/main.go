// Command gantry is the single binary of the gantry DevOps platform: the
// control-plane server, the host agent and the command-line client.
package main

import (
	"os"

	"github.com/gantry-dev/gantry/internal/cli"
)

func main() { os.Exit(cli.Execute()) }
