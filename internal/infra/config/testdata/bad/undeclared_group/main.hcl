provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "db" {
  provider = provider.testcloud.local
  image    = "base:dev"
}

group "web" {
  provider   = provider.testcloud.local
  image      = "base:dev"
  configure  = "DB=${group.dbb.hosts[0].address}"
  depends_on = [group.cache, host.legacy]
}

output "x" {
  value = network.app.id
}
