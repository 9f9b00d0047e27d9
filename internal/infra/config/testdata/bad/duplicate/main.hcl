provider "testcloud" "local" {}
provider "testssh" "dc1" {}

variable "image" {
  default = "base:dev"
}

group "web" {
  provider = provider.testcloud.local
  image    = var.image
}

locals {
  port = 1
}
