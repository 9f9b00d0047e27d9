provider "testcloud" "local" {}
provider "testssh" "dc1" {}

variable "region" {
  type        = string
  description = "where"
}

variable "zones" {
  type = list(string)
}

variable "bad" {
  type    = strin
  default = var.region
  extra   = 1
}
