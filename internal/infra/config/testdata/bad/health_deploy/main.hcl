provider "testcloud" "local" {}
provider "testssh" "dc1" {}

group "a" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check {
    http = "127.0.0.1:8080/healthz"
    tcp  = "127.0.0.1:8080"
  }
  deploy {
    app    = "shop"
    config = "HalfAtTime"
  }
}

group "b" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check {
    command       = []
    expect_status = 200
    interval      = "soon"
  }
  deploy {
    app    = ""
    config = "150%"
  }
}

group "c" {
  provider = provider.testcloud.local
  image    = "base:dev"
  health_check "web" {
    http          = "http://127.0.0.1/"
    expect_status = 999
    timeout       = "1.5s"
    retries       = 3
  }
}
