provider "testcloud" "local" {}
provider "testssh" "dc1" {}

grup "web" {
  provider = provider.testcloud.local
}

resource "x" "y" {}

locals "named" {}

provider "testcloud" {}

count = 3
