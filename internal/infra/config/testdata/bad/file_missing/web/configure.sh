PORT=${port}
DB=${db}
