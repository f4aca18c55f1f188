#!/usr/bin/env bash
# Start, stop and inspect a cluster: a master and N servers (or S shards of N servers).
#
#   scripts/cluster.sh start  [-n N] [--shards S] [-d DIR] [-p MASTER_PORT] [-s FIRST_SERVER_PORT] [--debug] [--no-build] [-- SERVER_FLAGS...]
#   scripts/cluster.sh stop   [-d DIR]
#   scripts/cluster.sh status [-d DIR]
#   scripts/cluster.sh demo   [-n N]          start, write and read keys, kill -9 the leader, show failover, stop
#   scripts/cluster.sh hosts-start HOSTS_FILE [--shards S] [-d DIR]   several machines (see docs/cluster.md)
#   scripts/cluster.sh hosts-stop  HOSTS_FILE [-d DIR]
#
# Defaults: N=3, S=1, DIR=run/cluster, master on 127.0.0.1:7087, servers' peer ports 7070.. and
# client ports peer+1000 (S*N servers: server i belongs to shard i/N). Logs go to DIR/logs, PIDs to DIR/pids.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cmd="${1:-help}"; shift || true
n=3; shards=1; dir="$root/run/cluster"; mport=7087; sport=7070; profile=release; build=1; hosts=""
if [[ "$cmd" == hosts-* ]]; then hosts="${1:?hosts file required}"; shift; fi
extra=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    -n) n="$2"; shift 2;;
    --shards) shards="$2"; shift 2;;
    -d) dir="$2"; shift 2;;
    -p) mport="$2"; shift 2;;
    -s) sport="$2"; shift 2;;
    --debug) profile=debug; shift;;
    --no-build) build=0; shift;;
    --) shift; extra=("$@"); break;;
    *) echo "unknown option '$1' (see the top of $0)" >&2; exit 2;;
  esac
done
bin="${CARGO_TARGET_DIR:-$root/target}/$profile"

build_bins() {
  if [[ $build == 1 ]]; then
    echo "building ($profile)..."
    if [[ $profile == release ]]; then (cd "$root" && cargo build --release --bins -q); else (cd "$root" && cargo build --bins -q); fi
  fi
}

all_alive() {
  local pid
  while read -r pid; do kill -0 "$pid" 2>/dev/null || return 1; done < "$dir/pids"
}

wait_leader() {
  local master="$1"
  for _ in $(seq 1 100); do
    if out=$("$bin/client" --master "$master" --timeout-ms 1000 leader 2>/dev/null); then echo "$out"; return 0; fi
    if [[ -f "$dir/pids" ]] && ! all_alive; then
      echo "a process exited during start; the logs in $dir/logs say:" >&2
      grep -h -m3 -i -E "error|caused" "$dir"/logs/*.log >&2 || true
      stop >&2; return 1
    fi
    sleep 0.2
  done
  echo "no leader after 20 s; see $dir/logs" >&2; return 1
}

start() {
  build_bins
  if [[ -f "$dir/pids" ]]; then
    if xargs -r kill -0 < "$dir/pids" 2>/dev/null; then
      echo "a cluster is already running from $dir (scripts/cluster.sh stop -d $dir)" >&2; exit 1
    fi
    stop >/dev/null  # leftovers of a cluster that lost a process
  fi
  mkdir -p "$dir/logs" "$dir/data"; : > "$dir/pids"
  echo "127.0.0.1:$mport" > "$dir/master"
  # A new cluster starts a new membership; the file lets a killed master be restarted (docs/cluster.md).
  rm -f "$dir/master.state"
  "$bin/master" --port "$mport" --replicas "$n" --shards "$shards" --state "$dir/master.state" > "$dir/logs/master.log" 2>&1 &
  echo $! >> "$dir/pids"; disown
  for ((i = 0; i < n * shards; i++)); do
    "$bin/server" --master "127.0.0.1:$mport" --port $((sport + i)) --client-port $((sport + 1000 + i)) \
      --shard $((i / n)) --data-dir "$dir/data/s$i" ${extra[@]+"${extra[@]}"} > "$dir/logs/server-$i.log" 2>&1 &
    echo $! >> "$dir/pids"; disown
  done
  local l; l=$(wait_leader "127.0.0.1:$mport")
  sleep 0.2
  if ! all_alive; then
    echo "a process of the new cluster exited (a port in use by another cluster?); the logs in $dir/logs say:" >&2
    grep -h -m3 -i -E "error|caused" "$dir"/logs/*.log >&2 || true
    stop >&2; exit 1
  fi
  if ((shards > 1)); then
    echo "cluster of $shards shards of $n up: master 127.0.0.1:$mport; logs in $dir/logs; leaders:"
    echo "$l"
  else
    echo "cluster of $n up: master 127.0.0.1:$mport, leader $l; logs in $dir/logs"
  fi
  echo "try: $bin/client --master 127.0.0.1:$mport put greeting hello"
}

stop() {
  [[ -f "$dir/pids" ]] || { echo "no cluster recorded in $dir"; return 0; }
  xargs -r kill < "$dir/pids" 2>/dev/null || true
  for _ in $(seq 1 50); do xargs -r kill -0 < "$dir/pids" 2>/dev/null || break; sleep 0.1; done
  xargs -r kill -9 < "$dir/pids" 2>/dev/null || true
  rm -f "$dir/pids"; echo "stopped the cluster in $dir"
}

status() {
  [[ -f "$dir/pids" ]] || { echo "no cluster recorded in $dir"; return 1; }
  while read -r pid; do
    if kill -0 "$pid" 2>/dev/null; then echo "pid $pid running: $(tr '\0' ' ' < /proc/$pid/cmdline 2>/dev/null | cut -c1-100)"; else echo "pid $pid not running"; fi
  done < "$dir/pids"
  "$bin/client" --master "$(cat "$dir/master")" status
}

demo() {
  ((shards == 1)) || { echo "demo runs one group; drop --shards" >&2; exit 2; }
  start
  local m; m=$(cat "$dir/master"); local c="$bin/client --master $m"
  set -x
  $c put greeting hello
  $c get greeting
  $c cas greeting hello bonjour
  $c get greeting
  $c status
  set +x
  local lid; lid=$($c leader | cut -d' ' -f1)
  # Ids follow registration order, so find the leader's process by its client port.
  local port; port=$($c leader | cut -d' ' -f2 | cut -d: -f2)
  local pid; pid=$(pgrep -f -- "--client-port $port --" | head -1)
  echo "kill -9 leader $lid (pid $pid)"; kill -9 "$pid"
  local t0; t0=$(date +%s%N)
  $c put after-failover yes
  echo "write acknowledged $(( ($(date +%s%N) - t0) / 1000000 )) ms after the kill"
  local got; got=$($c get greeting)
  echo "greeting after failover: $got"
  $c status || true
  stop
  [[ "$got" == bonjour ]] || { echo "demo FAILED: expected 'bonjour' after failover, got '$got'" >&2; exit 1; }
  echo "demo passed"
}

# Hosts file: one line per process, '#' comments allowed:
#   master HOST PORT
#   server HOST PEER_PORT CLIENT_PORT [extra server flags]
# Commands run through $SSH (default: ssh); SSH=local runs them here, for a dry run on one machine.
# Binaries are expected at $REMOTE_BIN on every host (default: this checkout's target/release).
# stdin is closed for each command: ssh would otherwise eat the rest of the hosts file.
run_on() { local host="$1"; shift; if [[ "${SSH:-ssh}" == local ]]; then bash -c "$*" < /dev/null; else ${SSH:-ssh} -n "$host" "$*"; fi; }

hosts_start() {
  build_bins
  local rb="${REMOTE_BIN:-$bin}"; mkdir -p "$dir"; : > "$dir/hosts-pids"
  local master
  master=$(awk '$1 == "master" { print $2 ":" $3; exit }' "$hosts")
  [[ -n "$master" ]] || { echo "$hosts has no 'master HOST PORT' line" >&2; exit 2; }
  local count; count=$(grep -c '^server' "$hosts")
  ((count % shards == 0)) || { echo "$hosts has $count servers, not a whole number per shard for --shards $shards" >&2; exit 2; }
  local per=$((count / shards))
  while read -r kind host p1 p2 rest; do
    case "$kind" in
      master) pid=$(run_on "$host" "nohup $rb/master --addr $host --port $p1 --replicas $per --shards $shards > /tmp/smr-master.log 2>&1 & echo \$!");;
      server) pid=$(run_on "$host" "nohup $rb/server --master $master --addr $host --port $p1 --client-port $p2 $rest > /tmp/smr-server-$p1.log 2>&1 & echo \$!");;
      *) continue;;
    esac
    echo "$host $pid" >> "$dir/hosts-pids"
  done < <(grep -v '^\s*#' "$hosts")
  echo "$master" > "$dir/master"
  local l; l=$(wait_leader "$master") || { echo "no leader: see the logs in /tmp on each host" >&2; exit 1; }
  echo "leader: $l"
}

hosts_stop() {
  [[ -f "$dir/hosts-pids" ]] || { echo "nothing recorded in $dir/hosts-pids"; return 0; }
  while read -r host pid; do run_on "$host" "kill -9 $pid" || true; done < "$dir/hosts-pids"
  rm -f "$dir/hosts-pids"; echo "stopped"
}

case "$cmd" in
  start) start;; stop) stop;; status) status;; demo) demo;;
  hosts-start) hosts_start;; hosts-stop) hosts_stop;;
  *) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; [[ "$cmd" == help ]] || exit 2;;
esac
