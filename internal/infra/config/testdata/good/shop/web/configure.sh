DB=${db}
PORT=${port}
