provider "testcloud" "local" {}

group "a" {
  provider          = provider.testcloud.local
  image             = "base:dev"
  setup_timeout     = 9223372037
  configure_timeout = "9223372037"
  shutdown_timeout  = "2562048h"
  health_check {
    http     = "http://127.0.0.1:8080/"
    timeout  = 1e30
    interval = "1ns"
  }
  deploy { app = "shop" }
}

group "b" {
  provider      = provider.testcloud.local
  image         = "base:dev"
  count         = 9223372036854775808
  setup_timeout = -1
  health_check {
    tcp      = "5432"
    timeout  = "2h"
    interval = 120
  }
  deploy { app = "shop" }
}
