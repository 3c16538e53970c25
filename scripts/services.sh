# Starts throw-away PostgreSQL, Redis, S3 (moto) and Docker servers for tests and benchmarks.
# Source it, call start_services, and the exported URLs point at them; stop_services (set as an
# EXIT trap) removes everything. Each server listens on loopback on a free port.

SERVICES_DIR=""
SERVICE_PIDS=()

free_port() {
  python -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

wait_for() {  # wait_for SECONDS COMMAND...
  local deadline=$((SECONDS + $1)); shift
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then echo "timed out waiting for: $*" >&2; return 1; fi
    sleep 0.2
  done
}

start_postgres() {
  local bin; bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)
  local port; port=$(free_port)
  local data="$SERVICES_DIR/pg"
  id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
  mkdir -p "$data"; chown postgres "$SERVICES_DIR" "$data"
  runuser -u postgres -- "$bin/initdb" -D "$data" -U postgres -A trust --no-sync >/dev/null
  runuser -u postgres -- "$bin/pg_ctl" -D "$data" -l "$SERVICES_DIR/pg.log" -w -o \
    "-p $port -k $SERVICES_DIR -c listen_addresses=127.0.0.1 -c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200" \
    start >/dev/null
  PG_BIN=$bin
  export DATABASE_URL="postgres://postgres@127.0.0.1:$port/formicary"
  runuser -u postgres -- "$bin/createdb" -h 127.0.0.1 -p "$port" formicary
}

start_redis() {
  local port; port=$(free_port)
  redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize yes \
    --pidfile "$SERVICES_DIR/redis.pid" --logfile "$SERVICES_DIR/redis.log" --dir "$SERVICES_DIR"
  export REDIS_URL="redis://127.0.0.1:$port/0"
  wait_for 10 redis-cli -p "$port" ping
}

start_s3() {
  local port; port=$(free_port)
  moto_server -H 127.0.0.1 -p "$port" >"$SERVICES_DIR/moto.log" 2>&1 &
  SERVICE_PIDS+=($!)
  export FORMICARY_TEST_S3_ENDPOINT="http://127.0.0.1:$port"
  wait_for 20 curl -sf "$FORMICARY_TEST_S3_ENDPOINT/moto-api/"
}

start_docker() {
  if docker version >/dev/null 2>&1; then return 0; fi  # an engine is already running
  dockerd --iptables=false --ip-masq=false --bridge=none --data-root "$SERVICES_DIR/docker" \
    --exec-root "$SERVICES_DIR/docker-exec" --pidfile "$SERVICES_DIR/docker.pid" \
    -H "unix://$SERVICES_DIR/docker.sock" >"$SERVICES_DIR/docker.log" 2>&1 &
  SERVICE_PIDS+=($!)
  export DOCKER_HOST="unix://$SERVICES_DIR/docker.sock"
  wait_for 60 docker version
}

start_services() {  # start_services postgres redis s3 docker
  SERVICES_DIR=$(mktemp -d /tmp/formicary-services.XXXXXX)
  chmod 755 "$SERVICES_DIR"
  for service in "$@"; do "start_$service"; done
}

stop_services() {
  [ -n "$SERVICES_DIR" ] || return 0
  if [ -f "$SERVICES_DIR/pg/postmaster.pid" ]; then
    runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$SERVICES_DIR/pg" -m immediate stop >/dev/null 2>&1 || true
  fi
  [ -f "$SERVICES_DIR/redis.pid" ] && kill "$(cat "$SERVICES_DIR/redis.pid")" 2>/dev/null || true
  for pid in "${SERVICE_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SERVICE_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  rm -rf "$SERVICES_DIR" 2>/dev/null || true
  SERVICES_DIR=""
}
