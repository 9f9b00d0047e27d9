provider "testcloud" "c" {}

group "web" {
  provider = provider.testcloud.c
  image    = "web:1"
}

host "legacy" {
  provider = provider.testcloud.c
}

group "lb" {
  provider = provider.testcloud.c
  image    = "lb:1"
  load_balancer {
    target = group.web
    port   = 8080
  }
}

group "lb2" {
  provider = provider.testcloud.c
  image    = "lb:1"
  load_balancer {
    target = group.web
    port   = 8080
  }
}

group "self" {
  provider = provider.testcloud.c
  image    = "lb:1"
  load_balancer {
    target = group.self
    port   = 8080
  }
}

group "nohost" {
  provider = provider.testcloud.c
  image    = "lb:1"
  load_balancer {
    target = host.legacy
  }
}

group "typo" {
  provider = provider.testcloud.c
  image    = "lb:1"
  load_balancer {
    target = group.wbe
    port   = 80
    health_check {
      path = "/"
    }
    health_check {
      path = "/"
    }
  }
}
