PORT=${port
