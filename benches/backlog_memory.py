#!/usr/bin/env python3
"""Peak RSS of amrelay with a backlog (docs/delivery.md "Memory", docs/performance.md): N webhook batches of
~3 KB queued into a spool while the downstream is down, kill -9, restart, then the downstream
comes up and the backlog drains. Reports VmHWM/VmRSS from /proc/PID/status at each step and the
byte-budget gauges. Loopback only, every wait bounded.

Usage: benches/backlog_memory.py BINARY WORKDIR [N] [extra keys for delivery.spool, e.g.
", memory_window_bytes: 1000000"]  (WORKDIR is emptied first)"""
import http.client, http.server, json, os, signal, socket, subprocess, sys, threading, time

binary, work = sys.argv[1], sys.argv[2]
n = int(sys.argv[3]) if len(sys.argv) > 3 else 20000
spool_extra = sys.argv[4] if len(sys.argv) > 4 else ""
os.makedirs(work, exist_ok=True)
for f in os.listdir(work):
    os.remove(os.path.join(work, f))

def free_port():
    s = socket.socket(); s.bind(("127.0.0.1", 0)); p = s.getsockname()[1]; s.close(); return p

relay_port, down_port = free_port(), free_port()
cfg = os.path.join(work, "amrelay.yml")
open(cfg, "w").write(f"""server:
  listen_address: 127.0.0.1:{relay_port}
delivery:
  spool: {{path: {work}/spool.redb, max_bytes: 1073741824{spool_extra}}}
  queue_capacity: 1000000
  max_concurrency: 4
  retry: {{max_attempts: 100000, initial_backoff: 2s, max_backoff: 5s, max_elapsed: 24h}}
receivers:
  - name: down
    url: http://127.0.0.1:{down_port}/hook
""")

def hwm(pid):
    out = {}
    for line in open(f"/proc/{pid}/status"):
        if line.startswith(("VmHWM", "VmRSS")):
            k, v = line.split(":"); out[k] = int(v.split()[0]) // 1024
    return out

def start():
    p = subprocess.Popen([binary, "--config.file", cfg], stdout=subprocess.DEVNULL, stderr=open(os.path.join(work, "log"), "a"))
    deadline = time.time() + 120
    while time.time() < deadline:
        try:
            c = http.client.HTTPConnection("127.0.0.1", relay_port, timeout=2); c.request("GET", "/-/ready")
            if c.getresponse().status == 200: return p
        except OSError: pass
        time.sleep(0.05)
    raise SystemExit("relay not ready")

def metric(name):
    c = http.client.HTTPConnection("127.0.0.1", relay_port, timeout=10); c.request("GET", "/metrics")
    total = None
    for line in c.getresponse().read().decode().splitlines():
        if line.startswith(name) and not line.startswith("#"):
            total = (total or 0) + float(line.rsplit(" ", 1)[1])
    return total

filler = "x" * 2600
WIN_USED = 'amrelay_spool_memory_window_bytes{state="used"}'
WIN_PEAK = 'amrelay_spool_memory_window_bytes{state="peak"}'
BUDGET_PEAK = 'amrelay_memory_budget_bytes{state="peak"}'
def batch(i):
    return json.dumps({"version": "4", "groupKey": f'{{}}:{{alertname="A{i}"}}', "truncatedAlerts": 0, "status": "firing",
        "receiver": "amrelay", "groupLabels": {"alertname": f"A{i}"}, "commonLabels": {}, "commonAnnotations": {},
        "externalURL": "http://am:9093", "alerts": [{"status": "firing", "labels": {"alertname": f"A{i}", "severity": "critical"},
        "annotations": {"description": filler}, "startsAt": "2026-01-01T00:00:00Z", "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prom", "fingerprint": f"{i:016x}"}]}).encode()

p = start()
t0 = time.time()
def sender(lo, hi):
    c = http.client.HTTPConnection("127.0.0.1", relay_port, timeout=30)
    for i in range(lo, hi):
        while True:
            c.request("POST", "/webhook", body=batch(i), headers={"Content-Type": "application/json"})
            r = c.getresponse(); r.read()
            if r.status == 200: break
            time.sleep(0.2)
threads = [threading.Thread(target=sender, args=(k * n // 4, (k + 1) * n // 4)) for k in range(4)]
[t.start() for t in threads]; [t.join() for t in threads]
ingest = hwm(p.pid)
print(f"queued {n} in {time.time()-t0:.1f}s; size={len(batch(0))} B; spool_bytes={metric('amrelay_spool_bytes')}; ingest {ingest}", flush=True)
p.send_signal(signal.SIGKILL); p.wait()

t1 = time.time()
p = start()
ready = hwm(p.pid)
print(f"restart ready in {time.time()-t1:.1f}s: {ready}", flush=True)
time.sleep(2)
settled = hwm(p.pid)
print(f"2s after restart (downstream still down): {settled}; window={metric(WIN_USED)}", flush=True)

received = [0]
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0))); received[0] += 1
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
srv = http.server.ThreadingHTTPServer(("127.0.0.1", down_port), H)
threading.Thread(target=srv.serve_forever, daemon=True).start()
t2 = time.time(); peak_seen = 0
while time.time() - t2 < 900:
    b = metric("amrelay_spool_bytes")
    peak_seen = max(peak_seen, hwm(p.pid)["VmRSS"])
    if b == 0 and received[0] >= n: break
    time.sleep(0.5)
drained = hwm(p.pid)
print(f"drained {received[0]} in {time.time()-t2:.1f}s: {drained}; window peak={metric(WIN_PEAK)} budget peak={metric(BUDGET_PEAK)}", flush=True)
p.terminate(); p.wait(); srv.shutdown()
