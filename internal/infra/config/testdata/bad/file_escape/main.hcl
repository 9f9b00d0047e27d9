provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "a" {
  provider = provider.testcloud.local
  image    = "base:dev"
  setup    = file("../shared/setup.sh")
}

group "b" {
  provider = provider.testcloud.local
  image    = "base:dev"
  setup    = file("/etc/passwd")
}

group "c" {
  provider  = provider.testcloud.local
  image     = "base:dev"
  setup     = file("scripts/outside.sh")
  configure = templatefile("scripts/../../x.tpl", {})
}
