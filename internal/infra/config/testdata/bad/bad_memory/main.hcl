provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "a" {
  provider = provider.testcloud.local
  image    = "base:dev"
  size {
    memory = "512MB"
  }
}

group "b" {
  provider = provider.testcloud.local
  image    = "base:dev"
  size {
    memory = 0.5
    cpus   = -1
  }
}

group "c" {
  provider = provider.testcloud.local
  image    = "base:dev"
  size {
    memory = "lots"
    cpus   = "many"
  }
}

group "d" {
  provider = provider.testcloud.local
  image    = "base:dev"
  size {
    memory = "0.3MiB"
  }
}
