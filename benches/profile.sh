#!/usr/bin/env bash
# Instructions and allocations per batch, ingest and delivery together, at the shipped defaults:
# amrelay (release build) runs under valgrind — callgrind for instruction counts, which repeat
# from run to run unlike times on a shared machine, then dhat for allocations — while wrk posts
# the ~6 KB 10-alert batch of benches/compare.sh over 1,000 rotating groupKeys to it and
# examples/bench_sink.rs counts what arrives. The same run without load is subtracted, so the
# figures are per batch, startup excluded.
#
# Usage: benches/profile.sh        (DURATION=20 CONNECTIONS=4; needs valgrind, wrk, python3)
#        RELAY_EXTRA='history: {enabled: false}' benches/profile.sh   (top-level config keys added)
# Leaves callgrind.out.load in $OUT (default target/profile) for callgrind_annotate.
set -euo pipefail
cd "$(dirname "$0")/.."
source benches/load.sh
DURATION=${DURATION:-20}
CONNECTIONS=${CONNECTIONS:-4}
SINK_PORT=19110
RELAY_PORT=19111
TARGET=${CARGO_TARGET_DIR:-target}
OUT=${OUT:-$TARGET/profile}
mkdir -p "$OUT"
[ -n "${NO_BUILD:-}" ] || cargo build --release --bin amrelay --example bench_sink >&2
RELAY=$TARGET/release/amrelay
SINK=$TARGET/release/examples/bench_sink

pids=()
cleanup() { for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

"$SINK" "127.0.0.1:$SINK_PORT" & pids+=($!)
for _ in $(seq 50); do curl -sf "http://127.0.0.1:$SINK_PORT/count" >/dev/null && break; sleep 0.1; done
cat >"$OUT/relay.yml" <<YAML
server: {listen_address: 127.0.0.1:$RELAY_PORT}
receivers:
  - name: downstream
    url: http://127.0.0.1:$SINK_PORT/webhook
${RELAY_EXTRA:-}
YAML

# The batch and the wrk script of compare.sh (benches/load.sh), with 1,000 groupKeys.
write_batch "$OUT/batch.json"
write_post_lua "$OUT/post.lua" "$OUT/batch.json" 1000

# profile TOOL NAME LOAD(yes/no): runs amrelay under valgrind; prints the batches delivered.
profile() {
  local tool=$1 name=$2 load=$3 before after pid
  before=$(curl -sf "http://127.0.0.1:$SINK_PORT/count" | cut -d' ' -f1)
  local args=(--tool="$tool")
  if [ "$tool" = callgrind ]; then args+=(--callgrind-out-file="$OUT/callgrind.out.$name"); fi
  if [ "$tool" = dhat ]; then args+=(--dhat-out-file="$OUT/dhat.out.$name"); fi
  valgrind "${args[@]}" "$RELAY" --config.file="$OUT/relay.yml" --log.level=warn 2>"$OUT/$tool.$name.log" &
  pid=$!; pids+=($pid)
  for _ in $(seq 600); do curl -sf "http://127.0.0.1:$RELAY_PORT/-/ready" >/dev/null 2>&1 && break; sleep 0.1; done
  if [ "$load" = yes ]; then
    wrk -t1 -c"$CONNECTIONS" -d"${DURATION}s" --timeout 30s -s "$OUT/post.lua" "http://127.0.0.1:$RELAY_PORT/webhook" >"$OUT/wrk.$tool.log"
    # Let delivery finish what was accepted before stopping.
    sleep 3
  fi
  kill -TERM "$pid"; wait "$pid" 2>/dev/null || true
  after=$(curl -sf "http://127.0.0.1:$SINK_PORT/count" | cut -d' ' -f1)
  echo $(( after - before ))
}
instructions() { grep -m1 '^summary:\|^totals:' "$OUT/callgrind.out.$1" | awk '{ print $2 }'; }
blocks() { grep -m1 'Total:' "$OUT/dhat.$1.log" | sed -E 's/.* in ([0-9,]+) blocks.*/\1/' | tr -d ,; }

profile callgrind idle no >/dev/null
batches=$(profile callgrind load yes)
profile dhat idle no >/dev/null
dhat_batches=$(profile dhat load yes)
ir_idle=$(instructions idle); ir_load=$(instructions load)
blocks_idle=$(blocks idle); blocks_load=$(blocks load)
echo "callgrind: $batches batches delivered; $(( (ir_load - ir_idle) / batches )) instructions per batch (ingest + delivery)"
echo "dhat: $dhat_batches batches delivered; $(( (blocks_load - blocks_idle) / dhat_batches )) allocations per batch"
echo "top functions (inclusive):"
callgrind_annotate --inclusive=yes "$OUT/callgrind.out.load" 2>/dev/null | sed -n '1,60p' | grep -E '^\s*[0-9,]+ \(' | head -40
