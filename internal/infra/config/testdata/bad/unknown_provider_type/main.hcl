provider "testclod" "local" {}

provider "kubernetes" "k" {
  config = "~/.kube/config"
}

provider "testcloud" "local" {
  regoin   = "eu"
  endpoint = "http://127.0.0.1:1"
  token    = "x"
}

group "web" {
  provider = provider.testclod.local
  image    = "base:dev"
  whatever = "not checked: the provider type is unknown"
}
