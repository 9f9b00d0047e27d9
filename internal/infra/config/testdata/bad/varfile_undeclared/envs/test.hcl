web_cont  = 3
web_count = "many"
region    = var.web_count

group "x" {}
