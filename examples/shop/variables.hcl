variable "web_count" {
  type        = number
  default     = 2
  description = "Number of web machines (the deploy config HalfAtATime needs at least 2)."
}

variable "image" {
  type        = string
  default     = "gantry-shop-base:dev"
  description = "Image of the db and web machines (built by build.sh)."
}

variable "lb_image" {
  type        = string
  default     = "gantry-shop-lb:dev"
  description = "Image of the load balancer: the base image plus haproxy (built by build.sh)."
}
