// Package config is the language of environments as code: it loads a
// directory of HCL2 files into a [Definition], checks it, orders its
// resources ([Definition.Graph]) and evaluates each resource's body when the
// engine gets to it ([Definition.EvalGroup], [Definition.EvalHost],
// [Definition.EvalNetwork], [Definition.EvalOutputs]).
//
// # Files
//
// Every *.hcl file directly in the directory is part of the definition
// (files starting with "." are skipped); files in subdirectories are not:
// they are what file() and templatefile() read. One definition serves many
// environment instances: `--env NAME` selects one, with its own variables
// file envs/NAME.hcl (optional) of plain assignments:
//
//	web_count = 3
//	image     = "shop:1.4"
//
// # Blocks
//
//	variable "image"     { type = string  default = "shop:dev"  description = "…" }
//	variable "web_count" { type = number  default = 2 }
//	locals { app_port = 8080 }
//	provider "docker" "local" { }                      # attributes: provider.Info.Config
//	network "app" { provider = provider.docker.local  subnet = "10.91.0.0/24" }
//	group "web" {
//	  provider  = provider.docker.local                # required
//	  image     = var.image                            # required where the provider has images
//	  count     = var.web_count                        # default 1; var., local., env. only
//	  size { cpus = 0.5  memory = "512MiB" }           # memory: MiB, or a string in MiB/GiB/TiB
//	  networks  = [network.app]
//	  labels    = { role = "web" }
//	  setup     = file("web/setup.sh")
//	  configure = templatefile("web/configure.sh", { db = group.db.hosts[0].address })
//	  shutdown  = "echo bye"
//	  setup_timeout = "10m"                            # also configure_timeout, shutdown_timeout:
//	                                                   # seconds or a Go duration (600, 300, 120 s;
//	                                                   # 1s to 24h)
//	  health_check { http = "http://127.0.0.1:8080/healthz" }  # or tcp, or command = [...];
//	                                                   # expect_status, timeout, interval
//	  deploy { app = "shop"  config = "HalfAtATime" }  # revision optional; strategy, canary {…}, blue_green {…}: below
//	  depends_on = [group.db]
//	  zone = "a"                                       # provider-specific: provider.Info.MachineAttrs
//	}
//	group "lb" {
//	  provider = provider.docker.local
//	  image    = "gantry-shop-lb:dev"                  # needs haproxy (the agent runs it)
//	  load_balancer { target = group.web  port = 8080 }   # below
//	}
//	host "legacy" { provider = provider.ssh.dc1  address = "10.0.0.5" }  # one existing machine
//	output "web" { value = group.web.hosts[*].address  description = "…" }
//
// Names of groups, hosts and networks are 1 to 30 lower-case letters,
// digits and dashes (they become host names, "<env>-<group>-<index>"; see
// [MachineName]); an environment's name is 1 to 32 of them. A group and a
// host cannot share a name.
//
// # Load balancers
//
// A load_balancer block makes the group's machine the load balancer of
// another group, its target. gantry runs the load balancer there (the
// agent drives it through its runtime API: haproxy's stats socket) and
// keeps it in step with the target's machines: a new machine is added in
// maintenance and let in once it is online (set up, its revision
// deployed, its health gate passed) and the load balancer's own checks
// pass rise times in a row; a machine that leaves is drained (capped by
// drain_timeout) and removed before its shutdown script runs; the
// target's deployments drain and let in each machine (the appspec's
// traffic events). No configure script is needed.
//
//	load_balancer {
//	  target        = group.web      # required: another group of the definition
//	  port          = 8080           # required: the targets' application port, 1-65535
//	  listen        = 80             # the port clients connect to (default 80), 1-65535
//	  balance       = "roundrobin"   # roundrobin (default) | leastconn | first | random
//	  drain_timeout = "30s"          # 1s to 1h (default 30s; 0 means the default): the longest wait for sessions to end
//	  header        = "X-Backend"    # a response header naming the server that answered (none by default)
//	  driver        = "haproxy"      # the only one so far
//	  health_check {                 # the load balancer's own check of each target
//	    path     = "/healthz"        # HTTP GET; without path, a TCP connect
//	    interval = "1s"              # 100ms to 1m (default 1s)
//	    rise     = 2                 # checks in a row that make a server UP, 1-10 (default 2)
//	    fall     = 2                 # and DOWN, 1-10 (default 2)
//	  }
//	}
//
// target is a reference resolved when the definition is loaded, not a
// value, and not a dependency: the load balancer and its targets are
// created in parallel. A group has at most one load balancer, and a group
// with a load_balancer block has count = 1: the target's deployments
// drain and let in each machine through one load balancer machine
// (api.LBTarget names one host), and clients reach it at one address;
// several would need an address in front of them, which gantry does not
// make yet (`gantry scale` refuses it too). Host blocks take no
// load_balancer block. A change to the block updates the group's record
// in place: no machine is replaced.
//
// # Deployment strategies
//
// A deploy block's strategy says how a new revision reaches the group's
// machines: "in-place" (the default: batches of the deployment
// configuration, each machine drained and let in again when the group
// has a load balancer) or "canary" (some machines first, at growing
// weights, analysed from the load balancer's counters, then the rest)
// or "blue_green" (also written "blue-green": a replacement fleet of the
// group's size gets the revision, the traffic moves to it, the original
// machines stay ready to take it back for keep_original, then go).
// Canary and blue_green need a load balancer in front of the group,
// checked at plan time. A canary block tunes a canary
// (api.CanarySpec; every attribute optional):
//
//	deploy {
//	  app      = "shop"
//	  strategy = "canary"
//	  canary {
//	    hosts             = 1                        # canary machines, 1-1000 (default 1)
//	    steps             = [{weight = 10, pause = "30s"}, {weight = 50, pause = "1m"}]
//	                                                 # 1-20 steps; weight 1-100 %, not going down;
//	                                                 # pause 0 (wait for promote) to 24h
//	    interval          = "10s"                    # analysis interval, 100ms to 1h
//	    max_error_rate    = 0.01                     # 0 to 1
//	    max_latency_ratio = 2                        # >= 1; negative turns the check off
//	    failure_limit     = 0                        # failed analyses tolerated, 0-100
//	    min_requests      = 20                       # requests an interval needs to be data
//	    on_no_data        = "wait"                   # wait | fail | pass
//	  }
//	}
//
// A blue_green block tunes a blue/green deployment (api.BlueGreenSpec;
// every attribute optional; a blue_green block with another strategy is
// an error):
//
//	deploy {
//	  app      = "shop"
//	  strategy = "blue_green"
//	  blue_green {
//	    shift_step     = 50     # percent of the traffic moved per step, 1-100
//	                            # (absent: all at once)
//	    shift_interval = "10s"  # wait between steps, 1s-1h (default 30s);
//	                            # only with shift_step
//	    keep_original  = "5m"   # how long the original machines stay ready to
//	                            # take the traffic back, 0s-48h (default 5m;
//	                            # "0s" removes them at once)
//	  }
//	}
//
// They are passed as api.DeployRequest.Strategy, Canary and BlueGreen
// when the environment starts the group's deployment (in place for the
// group's first revision).
//
// # Expressions
//
// Expressions see var.NAME, local.NAME, env.name, and the resources:
//
//	group.NAME    {name, count, labels, hosts = [{name, index, address, id}, …]}
//	host.NAME     {name, address, id}
//	network.NAME  {name, id, subnet, gateway}
//
// The provider attribute (provider.TYPE.NAME) and the entries of networks
// and depends_on are references, not values: they are resolved when the
// definition is loaded. Every reference to a group, host or network in a
// block's expressions is an implicit dependency, like depends_on.
//
// # Evaluation order
//
// Load: parse every file (syntax errors stop there); collect the
// declarations; give each variable its value (precedence: default <
// envs/ENV.hcl < --var; a --var value is taken as it is for a string
// variable or one without a type, parsed from its text for a number or a
// bool, and parsed as an HCL expression otherwise); evaluate the locals in
// dependency order (they may use var., local., env. and functions, not
// resources); evaluate provider blocks and counts (same rule: a count must
// be known before any machine exists); resolve references and check every
// name; find dependency cycles; then evaluate every block against
// [PlanWorld], a world where nothing exists yet, to catch what only
// evaluation shows (types, units, missing files). Every problem found is
// returned, as diag.Diagnostics, sorted by file and position.
//
// Bodies of groups, hosts, networks and outputs are not evaluated once and
// for all: `group.db.hosts[0].address` is only known once db exists, and
// changes when db's machines are replaced. So Load keeps the expressions,
// and the engine evaluates a block (Eval*) when it gets to it in
// [Definition.Graph] order, with a [World] of what exists then (built with
// [GroupValue], [HostValue], [NetworkValue]). An attribute that depends on
// something still unknown is not an error: it is named in
// GroupSpec.Unknown (plan shows "known after apply") and left zero.
// Evaluation is safe for concurrent use.
//
// # Functions
//
// file(path) reads a text file and templatefile(path, vars) renders one as
// an HCL template (`${db}`, `%{ for h in hosts }…%{ endfor }`) with vars as
// its only variables. Both take paths relative to the definition directory
// and refuse absolute paths, ".." and symbolic links that lead outside it
// (files are read through os.Root); files are capped at 4 MiB and must be
// UTF-8.
//
// From cty's standard library:
//
//	strings      upper lower title trimspace trim trimprefix trimsuffix chomp indent
//	             join split format formatlist replace regex regexall regex_replace
//	             substr strrev
//	collections  length (also of strings) concat merge keys values lookup element
//	             index contains coalesce coalescelist compact flatten distinct
//	             reverse slice sort chunklist zipmap range setunion setintersection
//	             setsubtract
//	numbers      min max abs ceil floor log pow signum parseint
//	encoding     jsonencode jsondecode csvdecode
//	conversion   tostring tonumber tobool tolist toset tomap
//	dates        formatdate timeadd
//	errors       try can
//
// # Decisions
//
//   - Static checks go through the same evaluation as apply, against
//     PlanWorld, rather than through a separate type checker: one code path
//     decides what a value means, so plan and apply cannot disagree.
//   - Group counts may not depend on resources, so the graph and every
//     machine's name are known at plan time.
//   - Hosts are existing machines: no count, image, size or networks.
//   - Label keys starting with "gantry." are reserved for gantry's own.
//   - Values users also give through the API go through the same
//     validators (package validate): counts, timeouts and intervals have
//     the ranges of docs/limits.md (a count at most 10000, a lifecycle
//     timeout 1s to 24h, compared as written so nothing overflows);
//     labels are Kubernetes-style keys and values; health-check URLs and
//     addresses, application names and deployment configurations are
//     checked as the API checks them. Their messages become diagnostics
//     at the value's position.
//   - Load parses files and evaluates blocks in parallel; a definition of
//     10,000 groups loads in a fraction of a second (BenchmarkLoad10k).
package config
