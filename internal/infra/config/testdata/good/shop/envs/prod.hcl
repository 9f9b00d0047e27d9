web_count = 3
