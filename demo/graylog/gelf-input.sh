#!/bin/sh
# graylog-init: create the GELF inputs bastion-guard sends to (Graylog has no input on first boot), then
# stay up idle so that `gelf-input.sh check` (the container's health check) can keep confirming that the
# TCP input exists. Credentials reach curl on stdin (-K -), never on its command line.
set -eu
sleeper=
trap 'kill $sleeper 2>/dev/null; exit 0' TERM INT  # docker compose stop: exit at once, leave nothing behind
api=${GRAYLOG_API:-http://graylog:9000/api}  # overridable for the tests
tcp_title="bastion-guard GELF TCP"

graylog() {  # graylog METHOD PATH [JSON]: one authenticated API call, body on stdout
  printf 'user = "admin:%s"\n' "$GRAYLOG_ROOT_PASSWORD" |
    curl -fsS -K - -X "$1" -H 'Accept: application/json' -H 'Content-Type: application/json' \
      -H 'X-Requested-By: bastion-guard-demo' ${3:+--data "$3"} "$api$2"
}

has_input() {
  graylog GET /system/inputs | grep -q "\"title\": *\"$1\""
}

create_input() {  # create_input TITLE TYPE: a global input on 12201, unless one with TITLE exists
  if has_input "$1"; then
    echo "graylog-init: input '$1' exists"
    return
  fi
  graylog POST /system/inputs "{\"title\":\"$1\",\"type\":\"$2\",\"global\":true,\"configuration\":{
    \"bind_address\":\"0.0.0.0\",\"port\":12201,\"recv_buffer_size\":1048576,\"decompress_size_limit\":8388608,
    \"max_message_size\":2097152,\"use_null_delimiter\":true,\"tls_enable\":false}}" >/dev/null
  echo "graylog-init: created input '$1'"
}

if [ "${1:-}" = check ]; then
  has_input "$tcp_title"
  exit
fi

until curl -fsS "$api/system/lbstatus" >/dev/null 2>&1; do
  echo "graylog-init: waiting for the Graylog API"
  sleep 5
done
create_input "$tcp_title" org.graylog2.inputs.gelf.tcp.GELFTCPInput
create_input "bastion-guard GELF UDP" org.graylog2.inputs.gelf.udp.GELFUDPInput
while :; do sleep 3600 >/dev/null 2>&1 & sleeper=$!; wait $sleeper; done
