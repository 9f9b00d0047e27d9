provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "db" {
  provider = provider.testcloud.local
  image    = ["base:dev"]
  labels   = "db"
}

group "web" {
  provider = provider.testcloud.local
  image    = "base:dev"
  labels   = { role = "web", "gantry.env" = "x" }
  setup    = { script = "x" }
  zone     = [1, 2]
}

host "legacy" {
  provider = provider.testssh.dc1
  address  = "10.0.0.5"
  port     = { number = 22 }
}
