provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "a" {
  provider = provider.testcloud.local
  image    = "base:dev"
  setup    = file("db/setup.sh")
  configure = templatefile("web/configure.sh", { port = 80 })
}

group "b" {
  provider = provider.testcloud.local
  image    = "base:dev"
  setup    = file("web")
  configure = templatefile("web/broken.tpl", { port = 80 })
}

group "c" {
  provider = provider.testcloud.local
  image    = "base:dev"
  setup    = uper("x")
  configure = templatefile("web/configure.sh", "port=80")
}
