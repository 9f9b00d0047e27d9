# examples/local: an environment with no infrastructure at all. Its
# machines are gantry agents started by the server on its own machine (the
# "local" provider), so it runs anywhere `gantry server --dev` runs:
#
#   gantry up examples/local --env dev        # 1 api + var.web machines, all online
#   gantry env show dev                        # phases, outputs, lifecycle runs
#   gantry scale --env dev web=4               # setup on the new ones, configure everywhere
#   gantry jobs show "$(gantry env show dev -o json | jq -r '.events[-1].id')"
#   gantry destroy --env dev --auto-approve    # shutdown, then gone
#
# Every machine's address is 127.0.0.1, so the scripts only print what a
# real one would act on.

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
