provider "testcloud" "local" {}
provider "testssh" "dc1" {}

network "app" {
  provider = provider.testcloud.local
}

network "lan" {
  provider = provider.testssh.dc1
}

host "legacy" {
  provider = provider.testssh.dc1
  address  = "10.0.0.5"
  networks = [network.app]
}

group "web" {
  provider = provider.testssh.dc1
  address  = "10.0.0.6"
  networks = [network.app]
  image    = "base:dev"
  zone     = "z1"
}
