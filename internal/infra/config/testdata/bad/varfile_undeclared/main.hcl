provider "testcloud" "local" {}
provider "testssh" "dc1" {}

variable "web_count" {
  type    = number
  default = 1
}
