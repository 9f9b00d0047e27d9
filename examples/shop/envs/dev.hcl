# The dev instance: gantry up examples/shop --env dev
web_count = 2
