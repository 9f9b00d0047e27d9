provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "db" {
  provider = provider.testcloud.local
  image    = "base:dev"
}

host "legacy" {
  provider = provider.testssh.dc1
  address  = "10.0.0.5"
}

group "web" {
  provider  = provider.testcloud.local
  image     = "base:dev"
  configure = "${group.db.hostz[0].address} ${group.db[0]} ${host.legacy.ip} ${env.nme}"
}
