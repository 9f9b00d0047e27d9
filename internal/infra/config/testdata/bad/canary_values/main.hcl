provider "testcloud" "c" {}

group "web" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "canary"
    canary {
      hosts             = 0
      steps             = [{ weight = 50, pause = "30s" }, { weight = 10 }, { weight = 101 }]
      interval          = "1s"
      max_error_rate    = 1.5
      max_latency_ratio = 0.5
      failure_limit     = -1
      on_no_data        = "ignore"
    }
  }
}

group "web2" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "blue_green"
    canary {
      hosts = 1
    }
  }
}

group "web3" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "rolling"
    canary {
      steps = [{ weight = 10 }]
    }
  }
}

group "web4" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app = "shop"
    canary {
      steps = [{ weight = 10, pauze = "1s" }]
    }
  }
}
