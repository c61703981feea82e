#!/bin/sh
# A private CA and a certificate for 127.0.0.1/localhost signed by it, for the mock
# API: certs/ca.pem (what the workflow's `ca_file` trusts), certs/server.pem and
# certs/server.key (what the mock serves). Needs the openssl command.
set -eu
cd "$(dirname "$0")"
mkdir -p certs
cd certs
openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=Stepwise example CA" \
    -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=127.0.0.1" \
    -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
    -extfile server.ext -out server.pem 2>/dev/null
rm -f server.csr server.ext ca.srl
echo "wrote $(pwd)/ca.pem, server.pem, server.key"
