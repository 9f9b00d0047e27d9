provider "testcloud" "local" {}
provider "testssh" "dc1" {}

host "legacy" {
  provider = provider.testssh.dc1
  address  = "10.0.0.5"
  count    = 2
  image    = "x"
  size {
    cpus = 1
  }
  labels {
    role = "x"
  }
}
