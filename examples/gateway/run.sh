#!/usr/bin/env bash
# authd as nginx's auth_request target, on loopback: authd, an upstream that
# echoes the headers it receives, and nginx in front of it configured with
# nginx.conf.tmpl (the configuration docs/gateways.md shows).
#
#   examples/gateway/run.sh           start all three, print curl commands to try; Ctrl-C stops them
#   examples/gateway/run.sh --check   start them, run those commands, check the answers, stop
#
# Ports: AUTHD_PORT (5000), UPSTREAM_PORT (8081), NGINX_PORT (8080), all on
# 127.0.0.1. Needs Go, curl and nginx (Debian: apt-get install nginx).
# Everything lives in a temporary folder, removed at exit; your .env and
# AUTHSVC_* variables are not used.
set -euo pipefail
cd "$(dirname "$0")/../.."

AUTHD_PORT=${AUTHD_PORT:-5000}
UPSTREAM_PORT=${UPSTREAM_PORT:-8081}
NGINX_PORT=${NGINX_PORT:-8080}
check=false
case "${1:-}" in
  "") ;;
  --check) check=true ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

nginx_bin=$(command -v nginx || true)
if [ -z "$nginx_bin" ] && [ -x /usr/sbin/nginx ]; then nginx_bin=/usr/sbin/nginx; fi
if [ -z "$nginx_bin" ]; then
  echo "run.sh: nginx not found (Debian: apt-get install nginx)" >&2
  exit 1
fi
command -v curl >/dev/null || { echo "run.sh: curl not found" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# wait_for NAME PORT LOG: wait until 127.0.0.1:PORT accepts connections.
wait_for() {
  for _ in $(seq 1 100); do
    if (exec 3<>"/dev/tcp/127.0.0.1/$2") 2>/dev/null; then return 0; fi
    sleep 0.1
  done
  echo "run.sh: $1 does not answer on 127.0.0.1:$2; its log:" >&2
  cat "$3" >&2
  exit 1
}

# json_field NAME: the string field NAME of the JSON object on stdin.
json_field() { sed -n 's/.*"'"$1"'":"\([^"]*\)".*/\1/p'; }

echo "building authd and the upstream..."
go build -o "$work/authd" ./cmd/authd
go build -o "$work/upstream" ./examples/gateway/upstream

# authd, with its own SQLite file and a bootstrap admin, started from $work
# with a clean environment so that no .env or AUTHSVC_* of yours applies.
admin_secret=$(od -An -N24 -tx1 /dev/urandom | tr -d ' \n')
(cd "$work" && exec env -i PATH="$PATH" HOME="$HOME" \
  AUTHSVC_ADDR="127.0.0.1:$AUTHD_PORT" AUTHSVC_DATABASE_URL="sqlite:$work/authd.db" \
  AUTHSVC_BOOTSTRAP_CLIENT_ID=admin AUTHSVC_BOOTSTRAP_CLIENT_SECRET="$admin_secret" \
  AUTHSVC_LOG_FORMAT=text ./authd) 2>"$work/authd.log" &
pids+=($!)

"$work/upstream" -addr "127.0.0.1:$UPSTREAM_PORT" 2>"$work/upstream.log" &
pids+=($!)

mkdir -p "$work/nginx/tmp"
sed -e "s/@LISTEN@/127.0.0.1:$NGINX_PORT/" -e "s/@AUTHD@/127.0.0.1:$AUTHD_PORT/" \
  -e "s/@UPSTREAM@/127.0.0.1:$UPSTREAM_PORT/" examples/gateway/nginx.conf.tmpl >"$work/nginx/nginx.conf"
"$nginx_bin" -p "$work/nginx/" -e "$work/nginx/error.log" -c "$work/nginx/nginx.conf" 2>>"$work/nginx/error.log" &
pids+=($!)

wait_for authd "$AUTHD_PORT" "$work/authd.log"
wait_for upstream "$UPSTREAM_PORT" "$work/upstream.log"
wait_for nginx "$NGINX_PORT" "$work/nginx/error.log"

authd="http://127.0.0.1:$AUTHD_PORT"
gw="http://127.0.0.1:$NGINX_PORT"

# Two clients: a reader (notes:read) and a writer (notes:read notes:write).
admin=$(curl -fsS -d client_id=admin -d client_secret="$admin_secret" "$authd/auth" | json_field token)
reader_secret=$(curl -fsS -H "Authorization: Bearer $admin" -d client_id=reader -d scope=notes:read "$authd/client" | json_field client_secret)
writer_secret=$(curl -fsS -H "Authorization: Bearer $admin" -d client_id=writer -d "scope=notes:read notes:write" "$authd/client" | json_field client_secret)

if ! $check; then
  cat <<EOF

authd     $authd   (admin client: admin / $admin_secret)
upstream  http://127.0.0.1:$UPSTREAM_PORT   (echoes each request; clients go through nginx)
nginx     $gw   (every request checked by authd; /write/ needs notes:write)
logs      $work/{authd.log,upstream.log,nginx/error.log}

Try, in another shell:

  token() { curl -s -u "\$1" -d grant_type=client_credentials $authd/oauth/token | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'; }
  READER=\$(token reader:$reader_secret)
  WRITER=\$(token writer:$writer_secret)

  # 401: no token
  curl -i $gw/notes/1
  # 200: the upstream's echo shows X-Auth-Subject: reader
  curl -i -H "Authorization: Bearer \$READER" $gw/notes/1
  # 403: /write/ needs notes:write
  curl -i -H "Authorization: Bearer \$READER" -d title=x $gw/write/n
  # 200
  curl -i -H "Authorization: Bearer \$WRITER" -d title=x $gw/write/n
  # log the writer out at authd, and nginx refuses it at once: 401
  curl -s -d token="\$WRITER" $authd/logout
  curl -i -H "Authorization: Bearer \$WRITER" $gw/notes/1

Ctrl-C stops all three.
EOF
  wait -n
  echo "run.sh: a process exited; stopping" >&2
  exit 1
fi

# --check: the same commands, with their answers checked.
failed=0
expect() { # expect WANT NAME CURL-ARGS...: the status nginx (or authd) answers
  local want=$1 name=$2 got
  shift 2
  got=$(curl -s -o "$work/body" -w '%{http_code}' "$@")
  if [ "$got" = "$want" ]; then
    echo "ok    $got  $name"
  else
    echo "FAIL  $got  $name (want $want): $(head -c 300 "$work/body")"
    failed=1
  fi
}
token() { curl -fsS -u "$1" -d grant_type=client_credentials "$authd/oauth/token" | json_field access_token; }
reader=$(token "reader:$reader_secret")
writer=$(token "writer:$writer_secret")
expect 401 "no token" "$gw/notes/1"
expect 401 "junk token" -H "Authorization: Bearer junk" "$gw/notes/1"
expect 200 "reader reads" -H "Authorization: Bearer $reader" -H "X-Auth-Subject: admin" "$gw/notes/1"
if ! grep -q '"X-Auth-Subject": "reader"' "$work/body"; then
  echo "FAIL  the upstream did not see X-Auth-Subject: reader: $(cat "$work/body")"
  failed=1
fi
expect 403 "reader writes" -H "Authorization: Bearer $reader" -d title=x "$gw/write/n"
expect 200 "writer writes" -H "Authorization: Bearer $writer" -d title=x "$gw/write/n"
expect 200 "writer logs out at authd" -d token="$writer" "$authd/logout"
expect 401 "writer after logout" -H "Authorization: Bearer $writer" "$gw/notes/1"
if [ "$failed" = 0 ]; then echo "run.sh --check: all passed"; else echo "run.sh --check: FAILED"; fi
exit "$failed"
