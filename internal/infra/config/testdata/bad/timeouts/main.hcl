provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "a" {
  provider          = provider.testcloud.local
  image             = "base:dev"
  setup_timeout     = "2 minutes"
  configure_timeout = 0
  shutdown_timeout  = "48h"
}

group "b" {
  provider      = provider.testcloud.local
  image         = "base:dev"
  setup_timeout = true
  depends_on    = group.a
}

group "c" {
  provider   = provider.testcloud.local
  image      = "base:dev"
  depends_on = [group.a.hosts, "group.b"]
}
