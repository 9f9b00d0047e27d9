provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "db" {
  provider = provider.testcloud.local
  image    = "base:dev"
}

locals {
  db_address = group.db.hosts[0].address
  a          = local.b
  b          = local.a
  p          = provider.testcloud.local
  n          = count.index
}

provider "testssh" "other" {
  key_file = "${group.db.name}.key"
}
