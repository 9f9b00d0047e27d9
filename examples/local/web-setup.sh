# setup of the web group (a templatefile: ${api} is the api machine's name)
echo "web $GANTRY_HOST_NAME set up; its api is ${api}"
