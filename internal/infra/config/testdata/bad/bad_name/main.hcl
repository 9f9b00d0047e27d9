provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "Web_1" {
  provider = provider.testcloud.local
  image    = "base:dev"
}

network "a-very-long-network-name-over-30" {
  provider = provider.testcloud.local
}

group "-web" {
  provider = provider.testcloud.local
  image    = "base:dev"
}

variable "my var" {
  default = 1
}

output "url-1" {
  value = 1
}
