# The instance bench/env/run.sh uses (it sets web_count with --var).
web_count = 5
