provider "testcloud" "local" {}

group "a" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check { tcp = "127.0.0.1:99999" }
  deploy { app = "shop" }
}

group "b" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check { tcp = "$(curl evil):80" }
  deploy { app = "shop" }
}

group "c" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check { tcp = "localhost" }
  deploy { app = "shop" }
}

group "d" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check { http = "http://$(id)/healthz" }
  deploy { app = "shop" }
}

group "e" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check { http = "http://127.0.0.1:0/healthz" }
  deploy { app = "Shop App" }
}

group "f" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check { command = ["check\u0000", "x"] }
  deploy {
    app    = "shop"
    config = "99999999999999999999"
  }
}
