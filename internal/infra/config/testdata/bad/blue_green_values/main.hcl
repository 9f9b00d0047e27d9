provider "testcloud" "c" {}

group "web" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "blue_green"
    blue_green {
      shift_step     = 0
      shift_interval = "500ms"
      keep_original  = "49h"
    }
  }
}

group "web2" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "blue-green"
    blue_green {
      shift_step     = 101
      shift_interval = "2h"
      keep_original  = "-1s"
    }
  }
}

group "web3" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "canary"
    blue_green {
      shift_step = 50
    }
  }
}

group "web4" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "blue_green"
    blue_green {
      shift_interval = "10s"
      keep_origin    = "5m"
    }
    blue_green {
      shift_step = 10
    }
  }
}

group "web5" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "blue_green"
    blue_green {
      shift_step     = 12.5
      shift_interval = "ten seconds"
      keep_original  = true
    }
  }
}

group "web6" {
  provider = provider.testcloud.c
  image    = "web:1"
  deploy {
    app      = "shop"
    strategy = "bluegreen"
    blue_green {
      shift_interval = "10s"
    }
  }
}
