this is not a definition file = {
