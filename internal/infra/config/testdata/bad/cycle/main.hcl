provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "a" {
  provider  = provider.testcloud.local
  image     = "base:dev"
  configure = group.b.hosts[0].address
}

group "b" {
  provider   = provider.testcloud.local
  image      = "base:dev"
  depends_on = [group.c]
}

group "c" {
  provider = provider.testcloud.local
  image    = "base:dev"
  labels   = { peer = group.a.name }
}

group "self" {
  provider  = provider.testcloud.local
  image     = "base:dev"
  configure = join(",", group.self.hosts[*].address)
}

group "ok" {
  provider   = provider.testcloud.local
  image      = "base:dev"
  depends_on = [group.a]
}
