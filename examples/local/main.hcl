# examples/local: an environment with no infrastructure at all. Its
# machines are gantry agents started by the server on its own machine (the
# "local" provider), so it runs anywhere `gantry server --dev` (`make dev`)
# runs. From the repository's root, with the banner's `export` line pasted
# (README.md's "Environments as code" runs the same, checked by TestReadme):
#
#   gantry up examples/local --env demo                   # 1 api + var.web machines, all online
#   gantry env show --env demo                            # phases, outputs, lifecycle runs
#   gantry scale examples/local --env demo web=4          # setup on the new ones, configure everywhere
#   gantry destroy examples/local --env demo --auto-approve   # shutdown, then gone
#   gantry env rm demo                                    # forget the destroyed environment
#
# Machines are named <env>-<group>-<index> (demo-web-0, …), beside make
# dev's own agents web1, web2 and db1. Every machine's address is 127.0.0.1,
# so the scripts only print what a real one would act on.

variable "web" {
  type        = number
  default     = 2
  description = "number of web machines"
}

provider "local" "here" {}

group "api" {
  provider = provider.local.here
  labels   = { role = "api" }
  setup    = "echo \"api $GANTRY_HOST_NAME set up\""
}

group "web" {
  provider = provider.local.here
  count    = var.web
  labels   = { role = "web", tier = "front" }

  # Runs once, after the agent joined; the api machine exists by then.
  setup = templatefile("web-setup.sh", { api = group.api.hosts[0].name })

  # Runs on every web machine whenever a machine of the environment comes
  # online or goes: the context lists who is online now.
  configure = "echo \"web machines online: $GANTRY_GROUP_WEB_ADDRESSES\"; cat \"$GANTRY_CONTEXT\""

  # Runs before the machine is destroyed (scale-in, destroy).
  shutdown = "echo \"bye from $GANTRY_HOST_NAME\""

  depends_on = [group.api]
}

output "web" {
  value = group.web.hosts[*].name
}
