// Package docker is the "docker" provider: machines are Docker containers
// running the gantry agent, networks are Docker bridge networks.
//
//	provider "docker" "local" {
//	  host = "unix:///var/run/docker.sock" # default: $DOCKER_HOST, else this
//	}
//
// # The Engine API, without the Docker client module
//
// The provider talks to the Docker Engine HTTP API directly (package
// engine: net/http over the unix socket, or tcp:// from DOCKER_HOST), pinned
// at API version 1.41, instead of importing github.com/docker/docker as
// DESIGN.md first planned: the engine on our machines is 20.10 (API 1.41),
// the provider needs about twelve endpoints, and the client module pulls in
// dozens of dependencies. Newer engines still serve 1.41.
//
// Images are never pulled (no registry is reachable from where gantry
// runs): an image that is not in the engine's store fails CreateMachine at
// once with `image "x" not found locally: build it or pull it first`.
//
// # Objects
//
// A network is a bridge network named Network.Name, with the labels
// gantry.env, gantry.resource and gantry.group="" and the attributes
// "subnet" (a CIDR; default: the engine picks one) and "internal"
// ("true": no route out of the network). Deleting a network first
// disconnects, by force, any container still attached.
//
// A machine is a container named and host-named Machine.Name, with the
// labels gantry.env, gantry.group, gantry.resource, gantry.label.<k> for
// each of the group's labels, gantry.networks (the network ids in the
// spec's order, which the engine does not keep: the first gives Address)
// and gantry.forward (the server addresses the agent reaches through a
// forwarder, see below). CPUs and MemoryMB become NanoCpus and Memory (with
// MemorySwap = Memory: no swap); both change in place with UpdateMachine.
// The restart policy is unless-stopped.
//
// # The agent
//
// The agent binary (Agent.Binary, a static gantry) is copied into the
// created container at /.gantry/gantry (mode 0755) through the archive
// endpoint before the container starts, and is its entrypoint:
//
//	/.gantry/gantry agent --server URL --bus-url NATS --name NAME --data-dir /var/lib/gantry-agent
//
// The join token is in the environment (GANTRY_JOIN_TOKEN), never on the
// command line. The image needs nothing but /bin/sh (for hooks and scripts):
// `FROM scratch` plus a static busybox will do (see package dockertest).
//
// # Reaching the server from containers
//
// The server listens on loopback by default (http://127.0.0.1:7070,
// nats://127.0.0.1:7422), which containers cannot reach. For every loopback
// server address, the provider runs inside the server process a TCP
// forwarder listening on the gateway IP of the machine's first network (of
// the default "bridge" network for a machine without networks) at the same
// port, forwarding to the loopback address, and gives the agent
// http://<gateway>:<port> and nats://<gateway>:<port>. The gateway IP is
// the host's own address on the bridge, so this works on internal networks
// too. A forwarder only accepts connections from addresses inside its
// network's subnet and drops any other.
//
// If the gateway address is taken (the server already listens on 0.0.0.0),
// the agent gets that address as is; a server address that is not loopback
// is passed unchanged. Forwarders are shared by gateway and port (by all
// providers of the process), started lazily, and started again when a
// provider created after a server restart creates or reads a running
// machine, so that agents reconnect. Close releases a provider's
// forwarders; the last provider to release one stops it. The server keeps
// its provider instances open as long as agents should reach it.
//
// When the daemon is on another machine (tcp:// to a remote host), the
// gateway address is not on this one and forwarding fails with an error
// saying so: the server must then listen on an address containers reach.
//
// # Errors
//
// Errors name the operation and the object, and carry the engine's own
// message. A daemon that does not answer gives `docker: cannot reach the
// daemon at <host>: <cause>; is Docker running? set provider "docker" {
// host = … } or DOCKER_HOST`.
package docker
