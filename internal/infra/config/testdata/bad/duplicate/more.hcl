variable "image" {
  default = "other:dev"
}

group "web" {
  provider = provider.testcloud.local
  image    = var.image
}

locals {
  port = 2
}

provider "testssh" "dc1" {}

host "web" {
  provider = provider.testssh.dc1
  address  = "10.0.0.5"
}

group "db" {
  provider = provider.testcloud.local
  image    = var.image
  size {
    cpus = 1
  }
  size {
    cpus = 2
  }
}
