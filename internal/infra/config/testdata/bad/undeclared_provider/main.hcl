provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "web" {
  provider = provider.testcloud.lcoal
  image    = "base:dev"
}

host "legacy" {
  provider = provider.ssh.dc1
  address  = "10.0.0.5"
}
