variable "image" {
  type        = string
  default     = "gantry-shop-base:dev"
  description = "base image of every machine"
}

variable "web_count" {
  type    = number
  default = 2
}

variable "region" {
  type    = string
  default = "eu"
}

variable "tags" {
  type    = map(string)
  default = {}
}

locals {
  app_port = 8080
  greeting = upper("hello ${env.name}")
  labels   = merge(var.tags, { app = "shop" })
}

provider "testcloud" "local" {
  region = var.region
}

provider "testssh" "dc1" {}

network "app" {
  provider = provider.testcloud.local
  subnet   = "10.91.0.0/24"
}
