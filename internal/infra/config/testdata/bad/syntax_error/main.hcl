group "web" {
  count = 
}
