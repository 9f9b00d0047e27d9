# examples/shop: a web shop on the local Docker engine. Three groups on one
# network: a stand-in database (busybox httpd), the shop app (deployed from
# the `shop` application's newest revision, HalfAtATime, health-checked) and
# an haproxy load balancer that gantry drives (load_balancer block): web
# machines join it once healthy and are drained before they leave.
#
#   examples/shop/build.sh                       # app binary + the two images
#   gantry app create shop && gantry push shop examples/shop/app/bundle
#   gantry up examples/shop --env dev            # envs/dev.hcl: web_count = 2
#   gantry scale --env dev web=4
#   gantry destroy examples/shop --env dev
#
# Machines are containers named <env>-<group>-<index>. See README.md.

provider "docker" "local" {}

network "app" {
  provider = provider.docker.local
}

group "db" {
  provider = provider.docker.local
  image    = var.image
  count    = 1
  networks = [network.app]
  labels   = { role = "db" }

  # Starts the database (busybox httpd on :5432 serving "hello from <host>").
  setup = file("db/setup.sh")
}

group "web" {
  provider = provider.docker.local
  image    = var.image
  count    = var.web_count
  networks = [network.app]
  labels   = { role = "web" }

  size {
    cpus   = 1
    memory = "256MiB"
  }

  # Writes the db machine's address where the app reads it.
  setup = templatefile("web/setup.sh", {
    db = group.db.hosts[0].address
  })
  shutdown         = file("web/shutdown.sh")
  shutdown_timeout = 30

  health_check {
    http = "http://127.0.0.1:8080/healthz"
  }

  deploy {
    app    = "shop"
    config = "HalfAtATime"
  }

  depends_on = [group.db]
}

group "lb" {
  provider = provider.docker.local
  image    = var.lb_image
  count    = 1
  networks = [network.app]
  labels   = { role = "lb" }

  # This machine is the load balancer of group web: gantry runs haproxy on
  # it and drives it through its runtime API. A web machine is added in
  # maintenance and let in only once it is set up, deployed and healthy
  # (haproxy's own checks: rise 2); one that leaves, or is deployed to, is
  # drained first (no new requests; those in flight finish).
  load_balancer {
    target = group.web
    listen = 80   # where clients connect
    port   = 8080 # the app on each web machine
    header = "X-Backend"

    # haproxy's own check of each web machine: UP after 2 passes in a row.
    health_check {
      path     = "/healthz"
      interval = "500ms"
    }
  }
}

output "url" {
  value = "http://${group.lb.hosts[0].address}"
}

output "web" {
  value = group.web.hosts[*].address
}

output "db" {
  value = group.db.hosts[0].address
}
