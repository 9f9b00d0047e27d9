provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "a" {
  provider = provider.testcloud.local
  image    = "base:dev"
  labels   = { "my role" = "web" }
}

group "b" {
  provider = provider.testcloud.local
  image    = "base:dev"
  labels   = { role = "$(id)" }
}

group "c" {
  provider = provider.testcloud.local
  image    = "base:dev"
  labels   = { role = "web server" }
}

host "d" {
  provider = provider.testssh.dc1
  address  = "10.0.0.5"
  labels   = { "Example.com/role" = "db" }
}
