output "web" {
  value = group.web.hosts[*].address
}

output "lb_url" {
  value       = "http://${group.lb.hosts[0].address}:80"
  description = "the shop's front door"
}

output "greeting" {
  value = local.greeting
}
