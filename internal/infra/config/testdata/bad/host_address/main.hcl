provider "testssh" "dc1" {}

host "a" {
  provider = provider.testssh.dc1
  address  = "10.0.0.5; reboot"
  port     = 70000
}

host "b" {
  provider = provider.testssh.dc1
  address  = "db.example.com"
  port     = "ssh"
  labels   = { tier = "$(whoami)" }
}
