provider "testcloud" "local" {}
provider "testssh" "dc1" {}

network "app" {
  provider = provider.testcloud.local
}

group "web" {
  provider = provider.testcloud.local
  image    = "base:dev"
  networks = [network.ap, network.app, network.app, "app"]
}
