provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "web" {
  provider = provider.testcloud.local
  imgae    = "base:dev"
  colour   = "blue"
  sise {
    cpus = 1
  }
  size = { cpus = 1 }
}

network "app" {
  provider = provider.testcloud.local
  subnet   = "10.1.0.0/24"
  egress {
  }
}
