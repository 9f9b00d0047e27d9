provider "testcloud" "c" {}

group "web" {
  provider = provider.testcloud.c
  image    = "web:1"
}

group "lb" {
  provider = provider.testcloud.c
  image    = "lb:1"
  count    = 2
  load_balancer {
    target        = group.web
    listen        = 0
    port          = 70000
    balance       = "round-robin"
    drain_timeout = "2h"
    header        = "X Backend"
    driver        = "nginx"
    weight        = 3
    health_check {
      path     = "healthz now"
      interval = "50ms"
      rise     = 0
      fall     = 11
    }
  }
}
