#!/bin/sh
# setup of group web, a templatefile: db is the db machine's address
# (group.db.hosts[0].address). The app reads it on every request.
# (Literal dollar-brace sequences would need doubling here: this file is
# a template.)
set -eu
mkdir -p /etc/shop /run /var/log
echo '${db}' >/etc/shop/db-address.new
mv -f /etc/shop/db-address.new /etc/shop/db-address
echo "db address: $(cat /etc/shop/db-address)"
