#!/bin/sh
# kibana-setup: give the built-in kibana_system user the password from .env (Kibana logs in with it,
# as Elastic's start-local does), then stay up idle so that `kibana-user.sh check` (the health check)
# keeps confirming that Kibana's user can authenticate. Credentials reach curl on stdin, never argv.
set -eu
sleeper=
trap 'kill $sleeper 2>/dev/null; exit 0' TERM INT  # docker compose stop: exit at once, leave nothing behind
es=${ELASTICSEARCH_URL:-http://elasticsearch:9200}  # overridable for the tests

as_user() {  # as_user NAME PASSWORD curl-args...: one authenticated request
  name=$1 password=$2
  shift 2
  printf 'user = "%s:%s"\n' "$name" "$password" | curl -fsS -K - "$@"
}

if [ "${1:-}" = check ]; then
  as_user kibana_system "$KIBANA_PASSWORD" "$es/_security/_authenticate" >/dev/null
  exit
fi

until as_user elastic "$ELASTIC_PASSWORD" "$es/_cluster/health?wait_for_status=yellow&timeout=5s" >/dev/null 2>&1; do
  echo "kibana-setup: waiting for Elasticsearch"
  sleep 5
done
# The body holds the password: it goes in a file only this container can read, not on the command line.
umask 077
printf '{"password":"%s"}' "$KIBANA_PASSWORD" > /tmp/body.json
as_user elastic "$ELASTIC_PASSWORD" -X POST -H 'Content-Type: application/json' --data @/tmp/body.json \
  "$es/_security/user/kibana_system/_password" >/dev/null
rm -f /tmp/body.json
echo "kibana-setup: kibana_system password set"
while :; do sleep 3600 >/dev/null 2>&1 & sleeper=$!; wait $sleeper; done
