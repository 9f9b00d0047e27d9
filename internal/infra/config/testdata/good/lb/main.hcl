provider "testcloud" "c" {}

group "web" {
  provider = provider.testcloud.c
  image    = "web:1"
  count    = 3

  health_check {
    http = "http://127.0.0.1:8080/healthz"
  }

  deploy {
    app      = "shop"
    strategy = "canary"
    canary {
      hosts             = 1
      steps             = [{ weight = 10, pause = "30s" }, { weight = 50, pause = "1m" }, { weight = 100 }]
      interval          = "10s"
      max_error_rate    = 0.02
      max_latency_ratio = 2
      failure_limit     = 1
      min_requests      = 50
      on_no_data        = "fail"
    }
  }
}

group "lb" {
  provider = provider.testcloud.c
  image    = "lb:1"

  load_balancer {
    target        = group.web
    listen        = 8000
    port          = 8080
    balance       = "leastconn"
    drain_timeout = "45s"
    header        = "X-Backend"
    driver        = "haproxy"
    health_check {
      path     = "/healthz"
      interval = "500ms"
      rise     = 3
      fall     = 4
    }
  }
}

group "plain" {
  provider = provider.testcloud.c
  image    = "lb:1"
  load_balancer {
    target = group.other
    port   = 80
  }
}

group "other" {
  provider = provider.testcloud.c
  image    = "x"
  count    = 0
}

group "blue" {
  provider = provider.testcloud.c
  image    = "web:1"
  count    = 2
  deploy {
    app      = "shop"
    strategy = "blue_green"
    blue_green {
      shift_step     = 25
      shift_interval = "10s"
      keep_original  = "90m"
    }
  }
}

group "blue0" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "blue-green"
    blue_green {
      keep_original = "0s"
    }
  }
}

group "blue1" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "blue_green"
  }
}

group "bluefront" {
  provider = provider.testcloud.c
  image    = "lb:1"
  load_balancer {
    target = group.blue
    port   = 8080
  }
}
