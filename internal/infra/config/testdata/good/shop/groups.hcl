group "db" {
  provider = provider.testcloud.local
  image    = var.image
  count    = 1
  zone     = "z1"
  size {
    cpus   = 0.5
    memory = 256
  }
  networks = [network.app]
  labels   = merge(local.labels, { role = "db" })
  setup    = file("db/setup.sh")
}

group "web" {
  provider  = provider.testcloud.local
  image     = var.image
  count     = var.web_count
  networks  = [network.app]
  labels    = { role = "web" }
  configure = templatefile("web/configure.sh", { db = group.db.hosts[0].address, port = local.app_port })
  shutdown  = "echo bye"
  shutdown_timeout = "2m"
  setup_timeout    = 90
  size {
    memory = "1GiB"
  }
  health_check {
    http     = "http://127.0.0.1:8080/healthz"
    interval = "500ms"
    timeout  = 30
  }
  deploy {
    app    = "shop"
    config = "HalfAtATime"
  }
  depends_on = [group.db]
}

group "lb" {
  provider  = provider.testcloud.local
  image     = var.image
  networks  = [network.app]
  labels    = { role = "lb", backends = tostring(group.web.count) }
  configure = join("\n", [for h in group.web.hosts : "server ${h.name} ${h.address}:${local.app_port}"])
}

host "legacy" {
  provider = provider.testssh.dc1
  address  = "10.0.0.5"
  user     = "deploy"
  port     = 22
  labels   = { role = "web" }
  health_check {
    tcp = "10.0.0.5:22"
  }
  deploy {
    app = "legacy"
  }
}
