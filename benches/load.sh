# The load of the end-to-end benchmarks, sourced by compare.sh and profile.sh so that both post
# the same batch the same way.
#
#   write_batch FILE              the ~6 KB batch: 10 alerts like Alertmanager's (benches/common.rs),
#                                 half of them critical, groupKey "GROUPKEY" (replaced per request)
#   write_post_lua FILE BATCH N [unique]
#                                 a wrk script posting BATCH with one of N groupKeys per request
#                                 (Alertmanager spreads alerts over groups; one groupKey would
#                                 serialize delivery by design), printing a machine-readable
#                                 `RESULT requests=… socket_errors=… non2xx=… duration_us=… p50_us=… p99_us=…`;
#                                 `unique` gives every request's alerts a `seq` label of their own

write_batch() {
  python3 - "$1" <<'PY'
import json, sys
def alert(i):
    return {"status": "resolved" if i % 7 == 3 else "firing",
            "labels": {"alertname": "KubePodCrashLooping", "cluster": "prod-eu-1", "container": "api",
                       "instance": f"10.0.{i // 250}.{i % 250}:8080", "job": "kube-state-metrics",
                       "namespace": "kube-system" if i % 3 == 0 else "shop", "pod": f"api-{i}",
                       "prometheus": "monitoring/k8s", "severity": "critical" if i % 2 == 0 else "warning",
                       "team": "checkout"},
            "annotations": {"description": f"Pod shop/api-{i} (api) is in waiting state (reason: \"CrashLoopBackOff\").",
                            "summary": "Pod is crash looping."},
            "startsAt": "2026-11-29T04:36:08.439Z", "endsAt": "0001-01-01T00:00:00Z",
            "generatorURL": "http://prometheus.example:9090/graph?g0.expr=up",
            "fingerprint": "%016x" % (i * 7919)}
batch = {"receiver": "amrelay", "status": "firing", "alerts": [alert(i) for i in range(10)],
         "groupLabels": {"alertname": "KubePodCrashLooping"}, "commonLabels": {}, "commonAnnotations": {},
         "externalURL": "http://alertmanager.example:9093", "version": "4",
         "groupKey": "GROUPKEY", "truncatedAlerts": 0}
open(sys.argv[1], "w").write(json.dumps(batch, separators=(",", ":")))
PY
}

write_post_lua() {
  local file=$1 batch=$2 groups=$3 body="bodies[n % $3]"
  [ "${4:-}" = unique ] && body="bodies[n % $3]:gsub('\"cluster\":', '\"seq\":\"' .. n .. '\",\"cluster\":')"
  cat >"$file" <<LUA
local f = io.open("$batch"); local template = f:read("*a"); f:close()
local bodies = {}
for i = 0, $((groups - 1)) do
  bodies[i] = template:gsub("GROUPKEY", '{}:{alertname=\\\\"KubePodCrashLooping\\\\",shard=\\\\"' .. i .. '\\\\"}')
end
local n = 0
request = function()
  n = n + 1
  local body = $body
  return wrk.format("POST", nil, {["Content-Type"] = "application/json"}, body)
end
LUA
  write_lua_result >>"$file"
}

# The wrk `done` handler printing the RESULT line.
write_lua_result() {
  cat <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT requests=%d socket_errors=%d non2xx=%d duration_us=%d p50_us=%d p99_us=%d\n",
    summary.requests, e.connect + e.read + e.write + e.timeout, e.status, summary.duration,
    latency:percentile(50), latency:percentile(99)))
end
LUA
}
