#!/usr/bin/env bash
# End-to-end comparison, in one run on this machine, of what Alertmanager's webhook could post to:
#   1. the downstream directly (the physical limit),
#   2. nginx proxy_pass with keep-alive to the downstream (the plain-proxy baseline),
#   3. amrelay, one receiver keeping half the alerts, spool off,
#   4. the same with the spool on (group commit),
#   5. the same with the spool on and group commit off,
#   6. amrelay fanning out to 3 receivers,
#   7. scenario 3 with a config reload every 100 ms,
#   8. amrelay with its downstream down (queues fill up, then 503s): the memory bound.
#   9. At the shipped defaults (a receiver with only a name and a URL), 1,000 rotating groupKeys:
#      nginx proxy_pass, the naive Rust peer am2am 0.1.10 (axum + reqwest + serde_json::Value,
#      installed from crates.io into target/compare-peers) and amrelay, alternated for ROUNDS
#      rounds. Here the system under test is alone on $SUT_CPU and wrk and the downstream share
#      $LOAD_CPU, as a downstream across a network does not compete with the relay. Counted at the
#      downstream: delivered batches/s; counted at wrk: refusals (503s) and p99 ingest latency.
#      The same scenario with `history: {enabled: false}` beside it gives what history costs.
#   9a/9b. the redb spool beside the shared NATS JetStream queue (one local nats-server, R1).
#   10. scenario 3 with the Slack preset (each notification rendered into Block Kit at delivery).
# Every scenario loads with the same 10-alert batch (~5 KB) for DURATION seconds with wrk, then
# waits (bounded) until every accepted alert has reached the downstream; a run where accepted and
# delivered differ is reported as FAILED. Prints one table, then the ratios the targets use.
#
# Pinning: the load generator (wrk, and the reload loop) runs on CPU $LOAD_CPU; the system under
# test (nginx or amrelay) and the downstream share CPU $SUT_CPU, so every scenario gets the same
# single core and wrk never competes with it. On a 2-core machine that is the only fair split.
#
# Usage: benches/compare.sh            (DURATION=10 ROUNDS=2 CONNECTIONS=32 LOAD_CPU=0 SUT_CPU=1;
#                                       SKIP_AM2AM=1 leaves the am2am peer out; NO_BUILD=1 uses the
#                                       release binaries already built)
# Takes about (8 + 3 * ROUNDS) * DURATION + 20 seconds after the build, plus am2am's first install.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/load.sh

DURATION=${DURATION:-10}
ROUNDS=${ROUNDS:-2}
CONNECTIONS=${CONNECTIONS:-32}
LOAD_CPU=${LOAD_CPU:-0}
SUT_CPU=${SUT_CPU:-1}
SINK_PORT=19100
PROXY_PORT=19101
RELAY_PORT=19102
SINK2_PORT=19103
AM2AM_PORT=19104

missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing ${missing[*]}" >&2
  DEBIAN_FRONTEND=noninteractive apt-get update -q >&2
  DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}" >&2
fi
NGINX=$(command -v nginx || echo /usr/sbin/nginx)

[ -n "${NO_BUILD:-}" ] || cargo build --release --bin amrelay --example bench_sink >&2
TARGET=${CARGO_TARGET_DIR:-target}
RELAY=$TARGET/release/amrelay
SINK=$TARGET/release/examples/bench_sink
PEERS=${PEERS_DIR:-$TARGET/compare-peers}
AM2AM=$PEERS/bin/am2am
if [ -z "${SKIP_AM2AM:-}" ] && [ ! -x "$AM2AM" ]; then
  echo "installing am2am 0.1.10 into $PEERS" >&2
  CARGO_TARGET_DIR="$PEERS/build" cargo install am2am --version 0.1.10 --locked --root "$PEERS" >&2
fi

mkdir -p "$TARGET"
work=$(realpath "$(mktemp -d -p "$TARGET" compare.XXXXXX)") # on the real disk, for the spool's fsync; absolute, for nginx -p
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# The batch and the wrk scripts (benches/load.sh): 64 groupKeys, and 1,000 in rotation as an alert
# storm spreads over groups.
write_batch "$work/batch.json"
echo "batch: $(wc -c <"$work/batch.json") bytes, 10 alerts" >&2
write_post_lua "$work/post.lua" "$work/batch.json" 64
write_post_lua "$work/post-1000.lua" "$work/batch.json" 1000

start_sink() {
  taskset -c "$SUT_CPU" "$SINK" "127.0.0.1:$SINK_PORT" &
  pids+=($!)
  for _ in $(seq 50); do curl -sf "http://127.0.0.1:$SINK_PORT/count" >/dev/null && return; sleep 0.1; done
  echo "sink did not start" >&2; exit 1
}
# The sink's alert count (field 2), or its request count with COUNT_FIELD=1 (templated bodies carry no `alerts`).
sink_alerts() { curl -sf "http://127.0.0.1:$SINK_PORT/count" | cut -d' ' -f"${COUNT_FIELD:-2}"; }

wait_ready() {
  for _ in $(seq 100); do curl -sf "$1" >/dev/null 2>&1 && return; sleep 0.1; done
  echo "not ready: $1" >&2
  tail -n 20 "$work/relay.log" "$work/nats.log" >&2 2>/dev/null
  exit 1
}

relay_config() { # $1: spool yes/no, $2: group commit, $3: receivers (1 or 3), $4: downstream URL base
  local spool="" receivers=""
  if [ "$1" = yes ]; then spool="  spool: {path: $work/spool-$RANDOM.redb, group_commit: $2}"; fi
  receivers="  - name: critical
    url: $4/critical
    conditions: [{label: severity, operator: In, values: [critical]}]"
  if [ "$3" = 3 ]; then
    receivers="$receivers
  - name: shop
    url: $4/shop
    conditions: [{label: namespace, operator: NotIn, values: [kube-system]}]
  - name: everything
    url: $4/everything"
  fi
  cat <<YAML
server: {listen_address: 127.0.0.1:$RELAY_PORT}
delivery:
  queue_capacity: ${QUEUE_CAPACITY:-1000000}
$spool
receivers:
$receivers
YAML
}

declare -A rps p50 p99 delivered_rate accepted_alerts delivered_alerts rss verdict
order=()

# run NAME URL ALERTS_PER_REQUEST PID_FOR_RSS
run() {
  local name=$1 url=$2 per_request=$3 pid=${4:-}
  local before after_run final out requests non2xx errors duration
  before=$(sink_alerts)
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$work/post.lua" "$url" | grep '^RESULT')
  after_run=$(sink_alerts)
  eval "$(echo "$out" | sed 's/^RESULT //')"
  local accepted=$(( requests - non2xx ))
  # Wait (bounded) until the downstream has everything that was accepted.
  local expected=$(( accepted * per_request ))
  final=$(( $(sink_alerts) - before ))
  for _ in $(seq 600); do
    [ "$final" -ge "$expected" ] && break
    sleep 0.1
    final=$(( $(sink_alerts) - before ))
  done
  order+=("$name")
  rps[$name]=$(awk -v r="$accepted" -v d="$duration_us" 'BEGIN { printf "%.0f", r / (d / 1e6) }')
  p50[$name]=$(awk -v v="$p50_us" 'BEGIN { printf "%.2f", v / 1000 }')
  p99[$name]=$(awk -v v="$p99_us" 'BEGIN { printf "%.2f", v / 1000 }')
  delivered_rate[$name]=$(awk -v a="$(( after_run - before ))" -v d="$duration_us" 'BEGIN { printf "%.0f", a / (d / 1e6) }')
  accepted_alerts[$name]=$expected
  delivered_alerts[$name]=$final
  rss[$name]=-
  if [ -n "$pid" ]; then
    rss[$name]=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$pid/status")
  fi
  # wrk stops counting requests still in flight when time is up, but the server may have accepted
  # them: at most one per connection more may arrive. Fewer than accepted is a loss.
  if [ "$final" -ge "$expected" ] && [ "$final" -le $(( expected + CONNECTIONS * per_request )) ]; then
    verdict[$name]=ok
  else
    verdict[$name]=FAILED
  fi
  echo "$name: ${rps[$name]} req/s, accepted $expected alerts, delivered $final (socket errors $socket_errors, non-2xx $non2xx)" >&2
}

start_sink

# 1. Direct.
run "1 direct" "http://127.0.0.1:$SINK_PORT/critical" 10

# 2. nginx proxy_pass with keep-alive.
cat >"$work/nginx.conf" <<NGINX
worker_processes 1;
error_log $work/nginx-error.log warn;
pid $work/nginx.pid;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/nginx-body;
  proxy_temp_path $work/nginx-proxy;
  client_max_body_size 8m;
  upstream sink { server 127.0.0.1:$SINK_PORT; keepalive 64; }
  server {
    listen 127.0.0.1:$PROXY_PORT;
    location / { proxy_pass http://sink; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
taskset -c "$SUT_CPU" "$NGINX" -c "$work/nginx.conf" -p "$work" -g 'daemon off;' &
nginx_pid=$!; pids+=($nginx_pid)
sleep 0.5
run "2 nginx proxy_pass" "http://127.0.0.1:$PROXY_PORT/critical" 10 "$nginx_pid"
kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true

start_relay() { # $1: config file; sets relay_pid
  taskset -c "$SUT_CPU" "$RELAY" --config.file="$1" --log.level=warn 2>>"$work/relay.log" &
  relay_pid=$!; pids+=($relay_pid)
  wait_ready "http://127.0.0.1:$RELAY_PORT/-/ready"
}
stop_relay() { kill "$relay_pid"; wait "$relay_pid" 2>/dev/null || true; }

# 3. amrelay, one receiver, spool off.
relay_config no true 1 "http://127.0.0.1:$SINK_PORT" >"$work/relay-3.yml"
start_relay "$work/relay-3.yml"
idle_rss=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$relay_pid/status")
run "3 amrelay, spool off" "http://127.0.0.1:$RELAY_PORT/webhook" 5 "$relay_pid"
stop_relay

# 4. Spool on, group commit.
relay_config yes true 1 "http://127.0.0.1:$SINK_PORT" >"$work/relay-4.yml"
start_relay "$work/relay-4.yml"
run "4 amrelay, spool on" "http://127.0.0.1:$RELAY_PORT/webhook" 5 "$relay_pid"
stop_relay

# 5. Spool on, group commit off.
relay_config yes false 1 "http://127.0.0.1:$SINK_PORT" >"$work/relay-5.yml"
start_relay "$work/relay-5.yml"
run "5 amrelay, spool on, no group commit" "http://127.0.0.1:$RELAY_PORT/webhook" 5 "$relay_pid"
stop_relay

# 6. Fan-out to 3 receivers (5 + 6 + 10 alerts of each batch).
relay_config no true 3 "http://127.0.0.1:$SINK_PORT" >"$work/relay-6.yml"
start_relay "$work/relay-6.yml"
run "6 amrelay, 3 receivers" "http://127.0.0.1:$RELAY_PORT/webhook" 21 "$relay_pid"
stop_relay

# 7. Scenario 3 with a reload every 100 ms.
relay_config no true 1 "http://127.0.0.1:$SINK_PORT" >"$work/relay-7.yml"
start_relay "$work/relay-7.yml"
(
  end=$((SECONDS + DURATION + 1)); reloads=0
  while [ $SECONDS -lt $end ]; do
    taskset -c "$LOAD_CPU" curl -sf -XPOST "http://127.0.0.1:$RELAY_PORT/-/reload" >/dev/null && reloads=$((reloads + 1))
    sleep 0.1
  done
  echo "$reloads" >"$work/reloads"
) &
reloader=$!
run "7 amrelay, reload every 100ms" "http://127.0.0.1:$RELAY_PORT/webhook" 5 "$relay_pid"
wait "$reloader" || true
reloads=$(cat "$work/reloads")
stop_relay

# 8. Downstream down: queues fill up (capacity 10000), then 503s; memory stays bounded. Past a
# tenth of the capacity each answer is paced (250 ms), so this one takes 256 connections and 20 s
# to fill the queue.
QUEUE_CAPACITY=10000 relay_config no true 1 "http://127.0.0.1:9" >"$work/relay-8.yml"
start_relay "$work/relay-8.yml"
out=$(taskset -c "$LOAD_CPU" wrk -t1 -c256 -d"${DOWN_DURATION:-20}s" --timeout 10s -s "$work/post.lua" "http://127.0.0.1:$RELAY_PORT/webhook" | grep '^RESULT')
eval "$(echo "$out" | sed 's/^RESULT //')"
down_rss=$(awk '/VmHWM/ { printf "%.1f", $2 / 1024 }' "/proc/$relay_pid/status")
down_accepted=$(( requests - non2xx ))
down_refused=$non2xx
stop_relay


# 9. Shipped defaults, 1,000 rotating groupKeys: nginx, am2am and amrelay alternated.
taskset -c "$LOAD_CPU" "$SINK" "127.0.0.1:$SINK2_PORT" &
pids+=($!)
wait_ready "http://127.0.0.1:$SINK2_PORT/count"
sink2_requests() { curl -sf "http://127.0.0.1:$SINK2_PORT/count" | cut -d' ' -f1; }
sed -e "s/127.0.0.1:$SINK_PORT/127.0.0.1:$SINK2_PORT/" "$work/nginx.conf" >"$work/nginx-9.conf"
cat >"$work/relay-9.yml" <<YAML
server: {listen_address: 127.0.0.1:$RELAY_PORT}
receivers:
  - name: downstream
    url: http://127.0.0.1:$SINK2_PORT/webhook
YAML
# The same with history off (issue 25: what recording every notification costs).
{ echo "history: {enabled: false}"; cat "$work/relay-9.yml"; } >"$work/relay-9-no-history.yml"
declare -A d_requests d_refused d_delivered d_duration d_p99 d_rss d_verdict
peers=("nginx proxy_pass" "am2am 0.1.10" "amrelay, defaults" "amrelay, history off")
[ -z "${SKIP_AM2AM:-}" ] || peers=("nginx proxy_pass" "amrelay, defaults" "amrelay, history off")
for peer in "${peers[@]}"; do
  d_requests[$peer]=0; d_refused[$peer]=0; d_delivered[$peer]=0; d_duration[$peer]=0; d_p99[$peer]=0; d_rss[$peer]=0
  d_verdict[$peer]=ok
done
# run9 PEER URL PID: one round of one peer; batches are counted at the downstream.
run9() {
  local peer=$1 url=$2 pid=$3 before after_run final out
  before=$(sink2_requests)
  out=$(taskset -c "$LOAD_CPU" wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 10s -s "$work/post-1000.lua" "$url" | grep '^RESULT')
  after_run=$(sink2_requests)
  eval "$(echo "$out" | sed 's/^RESULT //')"
  local accepted=$(( requests - non2xx ))
  final=$(( $(sink2_requests) - before ))
  for _ in $(seq 600); do
    [ "$final" -ge "$accepted" ] && break
    sleep 0.1
    final=$(( $(sink2_requests) - before ))
  done
  if [ "$final" -lt "$accepted" ] || [ "$final" -gt $(( accepted + CONNECTIONS )) ] || [ "$socket_errors" -gt 0 ]; then
    d_verdict[$peer]=FAILED
  fi
  d_requests[$peer]=$(( ${d_requests[$peer]} + requests ))
  d_refused[$peer]=$(( ${d_refused[$peer]} + non2xx ))
  d_delivered[$peer]=$(( ${d_delivered[$peer]} + after_run - before ))
  d_duration[$peer]=$(( ${d_duration[$peer]} + duration_us ))
  d_p99[$peer]=$(awk -v a="${d_p99[$peer]}" -v b="$p99_us" 'BEGIN { print (b > a ? b : a) }')
  local hwm
  hwm=$(awk '/VmHWM/ { print $2 }' "/proc/$pid/status")
  d_rss[$peer]=$(awk -v a="${d_rss[$peer]}" -v b="$hwm" 'BEGIN { print (b > a ? b : a) }')
  echo "$peer, round $round: $requests requests, $non2xx refused, $(( after_run - before )) delivered during the run, $final in all (socket errors $socket_errors)" >&2
}
for round in $(seq "$ROUNDS"); do
  taskset -c "$SUT_CPU" "$NGINX" -c "$work/nginx-9.conf" -p "$work" -g 'daemon off;' &
  nginx_pid=$!; pids+=($nginx_pid)
  wait_ready "http://127.0.0.1:$PROXY_PORT/count"
  run9 "nginx proxy_pass" "http://127.0.0.1:$PROXY_PORT/webhook" "$nginx_pid"
  kill "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true

  # am2am forwards the alerts array to ALERTMANAGER_URL; logging at warn, as amrelay here.
  if [ -z "${SKIP_AM2AM:-}" ]; then
  ALERTMANAGER_URL="http://127.0.0.1:$SINK2_PORT/api/v2/alerts" SERVER_ADDRESS="127.0.0.1:$AM2AM_PORT" \
    ENABLE_LABEL_ROUTING=false RUST_LOG=warn taskset -c "$SUT_CPU" "$AM2AM" >>"$work/am2am.log" 2>&1 &
  am2am_pid=$!; pids+=($am2am_pid)
  for _ in $(seq 100); do curl -s -o /dev/null "http://127.0.0.1:$AM2AM_PORT/" && break; sleep 0.1; done
  run9 "am2am 0.1.10" "http://127.0.0.1:$AM2AM_PORT/api/v2/alerts" "$am2am_pid"
  kill "$am2am_pid"; wait "$am2am_pid" 2>/dev/null || true
  fi

  start_relay "$work/relay-9.yml"
  [ "$round" = 1 ] && idle_rss_defaults=$(awk '/VmRSS/ { printf "%.1f", $2 / 1024 }' "/proc/$relay_pid/status")
  run9 "amrelay, defaults" "http://127.0.0.1:$RELAY_PORT/webhook" "$relay_pid"
  concurrency_seen=$(curl -sf "http://127.0.0.1:$RELAY_PORT/metrics" | awk '/^amrelay_delivery_concurrency/ { print $2 }')
  stop_relay

  start_relay "$work/relay-9-no-history.yml"
  run9 "amrelay, history off" "http://127.0.0.1:$RELAY_PORT/webhook" "$relay_pid"
  stop_relay
done

# ---- JetStream scenario (issue 17; a separate block) ------------------------------------------
# 9a/9b: the spool (as 4) and the shared NATS JetStream queue (delivery.nats, one local
# nats-server, R1, on the system-under-test core too), same run, same load. Every request gets
# its own `seq` label: JetStream drops a notification identical to one in its duplicate window
# (by design: that is how two Alertmanager peers' copies are delivered once), and this load
# repeats 64 bodies. Skipped, and said so, without nats-server (Debian: nats-server).
nats_ratio="not measured (no nats-server)"
if command -v nats-server >/dev/null || [ -x /usr/sbin/nats-server ]; then
  NATS_SERVER=$(command -v nats-server || echo /usr/sbin/nats-server)
  NATS_PORT=19105 # 19103 is scenario 9's sink, still running
  write_post_lua "$work/post-unique.lua" "$work/batch.json" 64 unique
  relay_config yes true 1 "http://127.0.0.1:$SINK_PORT" >"$work/relay-9a.yml"
  start_relay "$work/relay-9a.yml"
  mv "$work/post.lua" "$work/post.lua.repeat"; cp "$work/post-unique.lua" "$work/post.lua"
  run "9a amrelay, spool on (unique bodies)" "http://127.0.0.1:$RELAY_PORT/webhook" 5 "$relay_pid"
  stop_relay
  NATS_MONITOR_PORT=19106
  taskset -c "$SUT_CPU" "$NATS_SERVER" -js -a 127.0.0.1 -p "$NATS_PORT" -m "$NATS_MONITOR_PORT" -sd "$work/nats" >"$work/nats.log" 2>&1 &
  nats_pid=$!; pids+=($nats_pid)
  wait_ready "http://127.0.0.1:$NATS_MONITOR_PORT/healthz?js-enabled-only=true"
  relay_config no true 1 "http://127.0.0.1:$SINK_PORT" | sed "s|^receivers:|  nats: {urls: [nats://127.0.0.1:$NATS_PORT], replicas: 1}\nreceivers:|" >"$work/relay-9b.yml"
  start_relay "$work/relay-9b.yml"
  run "9b amrelay, NATS JetStream R1" "http://127.0.0.1:$RELAY_PORT/webhook" 5 "$relay_pid"
  stop_relay
  kill "$nats_pid"; wait "$nats_pid" 2>/dev/null || true
  mv "$work/post.lua.repeat" "$work/post.lua"
  ratio_early() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
  nats_ratio="$(ratio_early "${rps[9b amrelay, NATS JetStream R1]}" "${rps[9a amrelay, spool on (unique bodies)]}") req/s, p99 $(ratio_early "${p99[9b amrelay, NATS JetStream R1]}" "${p99[9a amrelay, spool on (unique bodies)]}")  (>= 0.5 req/s)"
fi
# ---- end of the JetStream scenario ------------------------------------------------------------

# --- Scenario 10 (issue 12, templates): scenario 3 with `preset: slack`. The sink counts
# requests, one per accepted batch (a Slack body has no `alerts` to count).
# The sink is no Slack: the preset's default pace (Slack's 1 message per second) is lifted, so
# this measures rendering, not the vendor's limit.
{ relay_config no true 1 "http://127.0.0.1:$SINK_PORT"; echo "    preset: slack"
  echo "    rate_limit: {per_second: 1000000, burst: 1000000}"; } >"$work/relay-10.yml"
start_relay "$work/relay-10.yml"
COUNT_FIELD=1 run "10 amrelay, slack preset" "http://127.0.0.1:$RELAY_PORT/webhook" 1 "$relay_pid"
stop_relay
# --- end of scenario 10

printf '\n| scenario | req/s | p50 ms | p99 ms | alerts delivered/s | accepted alerts | delivered alerts | peak RSS MB | |\n'
printf '|---|---:|---:|---:|---:|---:|---:|---:|---|\n'
for name in "${order[@]}"; do
  printf '| %s | %s | %s | %s | %s | %s | %s | %s | %s |\n' "$name" "${rps[$name]}" "${p50[$name]}" "${p99[$name]}" \
    "${delivered_rate[$name]}" "${accepted_alerts[$name]}" "${delivered_alerts[$name]}" "${rss[$name]}" "${verdict[$name]}"
done
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
cat <<REPORT

ratios (target):
  amrelay / nginx, req/s            $(ratio "${rps[3 amrelay, spool off]}" "${rps[2 nginx proxy_pass]}")  (>= 1.0)
  amrelay / nginx, p99 latency      $(ratio "${p99[3 amrelay, spool off]}" "${p99[2 nginx proxy_pass]}")  (<= 1.0)
  amrelay / direct, req/s           $(ratio "${rps[3 amrelay, spool off]}" "${rps[1 direct]}")
  spool on / off, req/s             $(ratio "${rps[4 amrelay, spool on]}" "${rps[3 amrelay, spool off]}")  (>= 0.5)
  spool without group commit / off  $(ratio "${rps[5 amrelay, spool on, no group commit]}" "${rps[3 amrelay, spool off]}")
  reload every 100ms / none, req/s  $(ratio "${rps[7 amrelay, reload every 100ms]}" "${rps[3 amrelay, spool off]}")  (0.9 to 1.1; $reloads reloads)
  reload every 100ms / none, p99    $(ratio "${p99[7 amrelay, reload every 100ms]}" "${p99[3 amrelay, spool off]}")  (<= 1.1)
  3 receivers / 1, req/s            $(ratio "${rps[6 amrelay, 3 receivers]}" "${rps[3 amrelay, spool off]}")
  NATS JetStream R1 / spool (9b / 9a) $nats_ratio
memory:
  idle RSS                          ${idle_rss} MB  (< 20)
  downstream down, queue 10000      peak ${down_rss} MB; accepted ${down_accepted} batches, refused ${down_refused} with 503
REPORT
# --- Scenario 10's ratio (issue 12, templates).
echo "  slack preset / untemplated, req/s $(ratio "${rps[10 amrelay, slack preset]}" "${rps[3 amrelay, spool off]}")"
# --- end of scenario 10's ratio
for name in "${order[@]}"; do
  if [ "${verdict[$name]}" != ok ]; then echo "FAILED: $name lost alerts" >&2; exit 1; fi
done

printf '\n| defaults, 1,000 groupKeys (%s rounds of %ss) | requests/s | refused (503) | delivered batches/s | p99 ms (worst round) | peak RSS MB | |\n' "$ROUNDS" "$DURATION"
printf '|---|---:|---:|---:|---:|---:|---|\n'
for peer in "${peers[@]}"; do
  printf '| %s | %s | %s | %s | %s | %s | %s |\n' "$peer" \
    "$(awk -v r="${d_requests[$peer]}" -v d="${d_duration[$peer]}" 'BEGIN { printf "%.0f", r / (d / 1e6) }')" \
    "${d_refused[$peer]}" \
    "$(awk -v r="${d_delivered[$peer]}" -v d="${d_duration[$peer]}" 'BEGIN { printf "%.0f", r / (d / 1e6) }')" \
    "$(awk -v v="${d_p99[$peer]}" 'BEGIN { printf "%.2f", v / 1000 }')" \
    "$(awk -v v="${d_rss[$peer]}" 'BEGIN { printf "%.1f", v / 1024 }')" "${d_verdict[$peer]}"
done
rate9() { awk -v r="${d_delivered[$1]}" -v d="${d_duration[$1]}" 'BEGIN { print r / (d / 1e6) }'; }
cat <<REPORT9

defaults, 1,000 groupKeys (target):
  amrelay / nginx, delivered batches/s   $(ratio "$(rate9 "amrelay, defaults")" "$(rate9 "nginx proxy_pass")")  (>= 1.0)
  amrelay / am2am, delivered batches/s   $([ -n "${SKIP_AM2AM:-}" ] && echo "not run (SKIP_AM2AM)" || ratio "$(rate9 "amrelay, defaults")" "$(rate9 "am2am 0.1.10")")  (>= 1.0)
  amrelay / nginx, p99 ingest latency    $(ratio "${d_p99[amrelay, defaults]}" "${d_p99[nginx proxy_pass]}")  (<= 1.0)
  amrelay refusals (503)                 ${d_refused[amrelay, defaults]}  (0 while the downstream keeps up)
  amrelay idle RSS                       ${idle_rss_defaults} MB  (< 20)
  amrelay peak RSS under load            $(awk -v v="${d_rss[amrelay, defaults]}" 'BEGIN { printf "%.1f", v / 1024 }') MB  (< 50)
  amrelay_delivery_concurrency at the end of the last round: ${concurrency_seen:-?}
  history on / off, delivered batches/s  $(ratio "$(rate9 "amrelay, defaults")" "$(rate9 "amrelay, history off")")  (>= 0.9)
  history on / off, p99 ingest latency   $(ratio "${d_p99[amrelay, defaults]}" "${d_p99[amrelay, history off]}")  (<= 1.1)
REPORT9
for peer in "${peers[@]}"; do
  if [ "${d_verdict[$peer]}" != ok ]; then echo "FAILED: $peer lost batches or had socket errors" >&2; exit 1; fi
done
