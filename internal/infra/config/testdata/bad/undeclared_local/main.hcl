provider "testcloud" "local" {}
provider "testssh" "dc1" {}

locals {
  port = 8080
  url  = "http://localhost:${local.prot}"
}

group "web" {
  provider  = provider.testcloud.local
  image     = "base:dev"
  configure = "PORT=${local.port} ${local.host}"
}
