provider "testcloud" "local" {}
provider "testssh" "dc1" {}

variable "web_count" {
  type    = number
  default = 1
}

variable "tags" {
  type    = map(string)
  default = {}
}

variable "debug" {
  type    = bool
  default = false
}

variable "ports" {
  type    = list(number)
  default = "80"
}
