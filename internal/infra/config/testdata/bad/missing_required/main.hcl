provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "web" {
  image = "base:dev"
}

group "db" {
  provider = provider.testcloud.local
}

group "worker" {
  provider = "testcloud.local"
  image    = "base:dev"
  deploy {
    config = "AllAtOnce"
  }
}

output "nothing" {
}
