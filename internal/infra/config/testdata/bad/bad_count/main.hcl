provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "db" {
  provider = provider.testcloud.local
  image    = "base:dev"
  count    = -1
}

group "web" {
  provider = provider.testcloud.local
  image    = "base:dev"
  count    = 1.5
}

group "cache" {
  provider = provider.testcloud.local
  image    = "base:dev"
  count    = "two"
}

group "worker" {
  provider = provider.testcloud.local
  image    = "base:dev"
  count    = length(group.web.hosts)
}

group "big" {
  provider = provider.testcloud.local
  image    = "base:dev"
  count    = 100000
}
