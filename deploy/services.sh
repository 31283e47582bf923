#!/usr/bin/env bash
# `make services`: PostgreSQL and RabbitMQ on this machine, ready for `make test` and `make run`.
#
# When all is well it only reads state (a fraction of a second, restarts nothing). As root it starts what is
# down, allows trust auth for loopback connections, gives RabbitMQ an open-files limit of at least
# RABBITMQ_NOFILE (default 20000; quorum queues hold file handles, and at the PAM default of 1024 the
# broker stops accepting connections for every process on the machine) and enables the management
# plugin, which the tests read. Not as root, it changes nothing and prints the commands to run.
#
#   deploy/services.sh [--dry-run]   --dry-run: say what would be done (exit 2 if anything), change nothing
#   SKIP_SERVICES=1                  do nothing (the services run elsewhere; preflight still checks them)
#   RESTART_RABBITMQ=1               restart a broker below the limit even while clients are connected
set -euo pipefail

NOFILE=${RABBITMQ_NOFILE:-20000}
MANAGEMENT=${RABBITMQ_MANAGEMENT_URL:-http://127.0.0.1:15672}
LIMITS_FILE=${RABBITMQ_LIMITS_FILE:-/etc/security/limits.d/rabbitmq.conf}
DRY=0
[[ ${1:-} == --dry-run ]] && DRY=1
TODO=()     # what a non-root user has to run
PLANNED=0   # actions a dry run found

log() { echo "services: $*"; }
die() {
  echo "services: ERROR: $*" >&2
  exit 1
}
is_root() { [[ $(id -u) == 0 ]]; }

# plan DESCRIPTION COMMAND [FUNCTION...]: as root, run FUNCTION (or else eval COMMAND, a shell string);
# in a dry run or without root only note COMMAND, which is what a person would type. Returns non-zero
# when nothing ran, so the caller skips the checks that depend on it.
plan() {
  local what=$1 command=$2
  shift 2
  if ((DRY)); then
    log "would $what: $command"
    PLANNED=$((PLANNED + 1))
    return 1
  fi
  if ! is_root; then
    TODO+=("$command    # $what")
    return 1
  fi
  log "$what"
  if (($#)); then "$@" || die "could not $what"; else eval "$command" || die "could not $what"; fi
}

wait_for() { # SECONDS COMMAND...
  local seconds=$1
  shift
  for _ in $(seq "$seconds"); do
    "$@" && return 0
    sleep 1
  done
  "$@"
}

# PostgreSQL ------------------------------------------------------------------------------------------

pg_up() { pg_isready -q -h 127.0.0.1; }
pg_trusted() { psql -h 127.0.0.1 -U postgres -d postgres -Atc 'select 1' >/dev/null 2>&1; }

postgres() {
  command -v pg_isready >/dev/null && command -v psql >/dev/null ||
    die "PostgreSQL is not installed: apt-get install postgresql (or run .ci/run as root)"
  local version
  version=$(ls /etc/postgresql 2>/dev/null | sort -V | tail -1)
  if ! pg_up; then
    [[ -n $version ]] || die "PostgreSQL is not running at 127.0.0.1:5432 and no cluster is in /etc/postgresql"
    plan "start PostgreSQL $version" "pg_ctlcluster --skip-systemctl-redirect $version main start" || return 0
    wait_for 60 pg_up || die "PostgreSQL $version did not come up within 60 s (see /var/log/postgresql/)"
  fi
  if ! pg_trusted; then
    local hba=/etc/postgresql/$version/main/pg_hba.conf
    plan "allow trust auth for loopback connections in $hba" \
      "sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' $hba && pg_ctlcluster --skip-systemctl-redirect $version main reload" ||
      return 0
    wait_for 10 pg_trusted || die "psql -h 127.0.0.1 -U postgres still fails after allowing trust auth in $hba"
  fi
}

# RabbitMQ --------------------------------------------------------------------------------------------

# The server's VM (not a `rabbitmqctl`, which is a beam.smp of the rabbitmq user too); if its command
# line does not look as expected, ask the node (slower, so only then).
beam_pid() {
  local pid
  pid=$(pgrep -u rabbitmq -f 'beam\.smp.* -s rabbit boot' 2>/dev/null | head -1 || true)
  [[ -n $pid ]] || pid=$(timeout 20 rabbitmqctl -q eval 'list_to_integer(os:getpid()).' 2>/dev/null || true)
  echo "$pid"
}
nofile_of() {
  local n
  n=$(awk '/^Max open files/ {print $4}' "/proc/$1/limits" 2>/dev/null || true)
  [[ $n =~ ^[0-9]+$ ]] || die "cannot read the open-files limit of RabbitMQ (pid $1) in /proc/$1/limits"
  echo "$n"
}
amqp_clients() { ss -Htn state established '( sport = :5672 )' 2>/dev/null | wc -l; }
management_up() { curl -sf -m 3 -u guest:guest "$MANAGEMENT/api/overview" >/dev/null; }
systemd_managed() { [[ -d /run/systemd/system ]] && systemctl cat rabbitmq-server >/dev/null 2>&1; }

# `rabbitmq-server` as root starts the broker through `su`, whose limits are PAM's (1024 unless
# limits.d says otherwise), so start it as the rabbitmq user from a shell that raised the limit itself.
START="runuser -u rabbitmq -- sh -c 'ulimit -n $NOFILE && exec $(command -v rabbitmq-server || echo rabbitmq-server) -detached'"
start_rabbit() {
  if systemd_managed; then
    systemctl start rabbitmq-server
  else
    eval "$START" || return 1
  fi
  # await_startup fails at once while the node is not yet registered, so ask again until it answers.
  wait_for 90 started || die "RabbitMQ did not start within 90 s (see /var/log/rabbitmq/)"
}
started() { timeout 60 rabbitmqctl -q await_startup >/dev/null 2>&1; }

gone() { ! kill -0 "$1" 2>/dev/null; }

restart_rabbit() { # PID
  timeout 90 rabbitmqctl -q stop || kill -9 "$1" || true
  wait_for 30 gone "$1" || die "RabbitMQ (pid $1) did not stop"
  start_rabbit
}

limits_file() { # has it soft and hard limits of at least NOFILE for the rabbitmq user?
  local soft hard
  soft=$(awk '$1 == "rabbitmq" && $2 == "soft" && $3 == "nofile" {print $4}' "$LIMITS_FILE" 2>/dev/null || true)
  hard=$(awk '$1 == "rabbitmq" && $2 == "hard" && $3 == "nofile" {print $4}' "$LIMITS_FILE" 2>/dev/null || true)
  ((${soft:-0} >= NOFILE && ${hard:-0} >= NOFILE)) && return 0
  is_root || return 0 # only starts need it, and they need root anyway
  plan "write $LIMITS_FILE, so a plain 'rabbitmq-server -detached' gets the limit too" \
    "printf 'rabbitmq soft nofile %s\nrabbitmq hard nofile %s\n' $NOFILE $NOFILE > $LIMITS_FILE" || true
}

rabbitmq() {
  command -v rabbitmq-server >/dev/null || die "RabbitMQ is not installed: apt-get install rabbitmq-server (or run .ci/run as root)"
  limits_file
  local pid have
  pid=$(beam_pid)
  if [[ -z $pid ]]; then
    plan "start RabbitMQ with an open-files limit of $NOFILE" "$START" start_rabbit || return 0
  else
    have=$(nofile_of "$pid")
    if ((have < NOFILE)); then
      systemd_managed && die "RabbitMQ (pid $pid) has an open-files limit of $have, below $NOFILE. Raise it with:" \
        "systemctl edit rabbitmq-server  ([Service] LimitNOFILE=$NOFILE), then systemctl restart rabbitmq-server"
      local clients note=""
      clients=$(amqp_clients)
      if ((clients > 0)) && [[ ${RESTART_RABBITMQ:-0} != 1 ]]; then
        note=" (but $clients AMQP clients are connected: only with RESTART_RABBITMQ=1)"
        ((DRY)) || die "RabbitMQ (pid $pid) has an open-files limit of $have, below $NOFILE, and must be" \
          "restarted, but $clients AMQP clients are connected (other test runs, a 'make run' stack). Stop them," \
          "or cut them off, as root: RESTART_RABBITMQ=1 make services"
      fi
      plan "restart RabbitMQ (pid $pid): its open-files limit is $have, below $NOFILE$note" \
        "rabbitmqctl stop && $START" restart_rabbit "$pid" || return 0
    fi
  fi
  pid=$(beam_pid)
  [[ -n $pid ]] || die "RabbitMQ is not running after starting it (see /var/log/rabbitmq/)"
  have=$(nofile_of "$pid")
  ((have >= NOFILE)) || die "RabbitMQ (pid $pid) runs with an open-files limit of $have, below $NOFILE, even" \
    "after a restart (see /proc/$pid/limits). Its quorum queues will exhaust it. Check 'ulimit -Hn' of root and $LIMITS_FILE."

  if ! management_up; then
    if ! grep -q rabbitmq_management /etc/rabbitmq/enabled_plugins 2>/dev/null; then
      plan "enable the management plugin (the tests read its API)" \
        "rabbitmq-plugins -q enable rabbitmq_management >/dev/null" || return 0
    fi
    # Enabled but not answering: the broker is (re)starting, or a test stopped its app for a moment.
    if ((DRY)); then
      plan "wait for the management API at $MANAGEMENT" "curl -sf -u guest:guest $MANAGEMENT/api/overview" || return 0
    fi
    wait_for 60 management_up || die "the management API at $MANAGEMENT does not answer (rabbitmq-plugins list -e)"
  fi
}

# -----------------------------------------------------------------------------------------------------

if [[ ${SKIP_SERVICES:-0} == 1 ]]; then
  log "SKIP_SERVICES=1: leaving PostgreSQL and RabbitMQ to you"
  exit 0
fi
command -v curl >/dev/null || die "curl is missing: apt-get install curl"
postgres
rabbitmq

if ((DRY)); then
  ((PLANNED)) && exit 2
  log "PostgreSQL and RabbitMQ are ready; nothing to do"
  exit 0
fi
if ((${#TODO[@]})); then
  echo "services: not root, so nothing was changed. As root, run 'make services', or these:" >&2
  printf '  %s\n' "${TODO[@]}" >&2
  echo "services: (or SKIP_SERVICES=1 if PostgreSQL and RabbitMQ run elsewhere)" >&2
  exit 1
fi
log "PostgreSQL and RabbitMQ (open files $(nofile_of "$(beam_pid)"), management API) ready"
