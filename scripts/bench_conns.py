#!/usr/bin/env python3
"""Client side of scripts/bench-conns.sh: idle event streams and slow
connections against a Dash API on 127.0.0.1 (loopback only; every loop is
bounded in count and time).

  bench_conns.py streams --url URL --token T --pid API_PID --streams N [--events K]
  bench_conns.py slow --url URL --conns N [--duration S]
"""

import argparse
import asyncio
import json
import statistics
import time
import urllib.request
from urllib.parse import urlparse


def loopback(url):
    u = urlparse(url)
    if u.hostname not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(f"{url}: loopback only")
    return u.hostname, u.port or 80


def pct(xs, p):
    if not xs:
        return float("nan")
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(round(p / 100 * (len(xs) - 1))))]


def rss_mb(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def metric(url, name):
    with urllib.request.urlopen(url, timeout=10) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    return float("nan")


async def timed_get(host, port, path, timeout=5.0):
    """One request on a fresh connection: (status or error, seconds)."""
    t0 = time.monotonic()
    try:
        r, w = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
        w.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        line = await asyncio.wait_for(r.readline(), timeout)
        w.close()
        return line.decode(errors="replace").split(" ")[1], time.monotonic() - t0
    except Exception as e:  # a timeout, a reset, a refusal: counted, not fatal
        return type(e).__name__, time.monotonic() - t0


class Stream:
    def __init__(self):
        self.buf = b""
        self.seen = {}

    async def open(self, host, port):
        self.r, self.w = await asyncio.open_connection(host, port)
        self.w.write(f"GET /api/v1/events/stream HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
        head = await asyncio.wait_for(self.r.readuntil(b"\r\n\r\n"), 60)
        return b" 200 " in head.split(b"\r\n")[0]

    async def read(self, targets):
        while True:
            chunk = await self.r.read(65536)
            if not chunk:
                return
            now = time.monotonic()
            self.buf = (self.buf + chunk)[-4096:]
            for t in list(targets):
                if t not in self.seen and t.encode() in self.buf:
                    self.seen[t] = now


async def streams(a):
    host, port = loopback(a.url)
    metrics_url = a.metrics_url
    opened, failed = [], 0
    sem = asyncio.Semaphore(200)

    async def one():
        nonlocal failed
        async with sem:
            s = Stream()
            try:
                if await s.open(host, port):
                    opened.append(s)
                    return
            except Exception:
                pass
            failed += 1

    t0 = time.monotonic()
    await asyncio.gather(*(one() for _ in range(a.streams)))
    print(f"opened {len(opened)} streams ({failed} failed) in {time.monotonic() - t0:.1f}s")
    targets = {}
    readers = [asyncio.create_task(s.read(targets)) for s in opened]
    await asyncio.sleep(a.settle)
    q0, t0 = metric(metrics_url, "pg_query_seconds_count"), time.monotonic()
    await asyncio.sleep(a.window)
    q1, t1 = metric(metrics_url, "pg_query_seconds_count"), time.monotonic()
    qps = (q1 - q0) / (t1 - t0)
    rss = rss_mb(a.pid)
    health = [await timed_get(host, port, "/health") for _ in range(20)]
    lat = []
    for i in range(a.events):
        body = json.dumps({"name": f"bench-{i}-{time.time_ns()}", "strategy": "parallel"}).encode()
        req = urllib.request.Request(a.url + "/api/v1/swarms", data=body, method="POST", headers={
            "Authorization": "Bearer " + a.token, "Content-Type": "application/json"})
        sent = time.monotonic()
        with urllib.request.urlopen(req, timeout=30) as r:
            sid = json.loads(r.read())["id"]
        targets[sid] = sent
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and sum(sid in s.seen for s in opened) < len(opened):
            await asyncio.sleep(0.01)
        lat += [s.seen[sid] - sent for s in opened if sid in s.seen]
        missing = sum(sid not in s.seen for s in opened)
        if missing:
            print(f"event {i}: {missing} streams did not get it within 30 s")
        await asyncio.sleep(0.5)
    for t in readers:
        t.cancel()
    for s in opened:
        s.w.close()
    hl = [d for st, d in health if st == "200"]
    print(json.dumps({
        "streams": len(opened), "failed": failed,
        "api_queries_per_s": round(qps, 1),
        "api_rss_mb": round(rss, 1),
        "delivery_p50_ms": round(pct(lat, 50) * 1000, 1),
        "delivery_p99_ms": round(pct(lat, 99) * 1000, 1),
        "deliveries": len(lat),
        "health_ok": len(hl), "health_p50_ms": round(pct(hl, 50) * 1000, 1),
    }))


async def slow(a):
    host, port = loopback(a.url)
    end = time.monotonic() + a.duration
    stats = {"connects": 0, "closed_by_server": 0, "refused": 0}

    async def trickler(i):
        once = a.no_reconnect
        while time.monotonic() < end:
            if once is None:
                await asyncio.sleep(end - time.monotonic())
                return
            if once:
                once = None  # this client connects only once
            try:
                r, w = await asyncio.wait_for(asyncio.open_connection(host, port), 5)
                stats["connects"] += 1
                w.write(b"GET /api/v1/swarms HTTP/1.1\r\nHost: x\r\n")
                while time.monotonic() < end:
                    w.write(b"X-a: b\r\n")  # never the blank line that ends the head
                    await w.drain()
                    try:
                        if await asyncio.wait_for(r.read(1024), 1.0) == b"":
                            break
                    except asyncio.TimeoutError:
                        continue
                stats["closed_by_server"] += 1
                w.close()
            except Exception:
                stats["refused"] += 1
                await asyncio.sleep(0.5)

    tasks = [asyncio.create_task(trickler(i)) for i in range(a.conns)]
    await asyncio.sleep(a.ramp)
    probes = []
    while time.monotonic() < end - 1:
        probes.append(await timed_get(host, port, "/api/v1/swarms?limit=1"))
        await asyncio.sleep(0.1)
    for t in tasks:
        t.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    ok = [d for st, d in probes if st == "200"]
    print(json.dumps({
        "slow_conns": a.conns, "reconnect": not a.no_reconnect, **stats,
        "probes": len(probes), "probes_200": len(ok),
        "other": sorted({st for st, _ in probes if st != "200"}),
        "p50_ms": round(pct(ok, 50) * 1000, 1), "p99_ms": round(pct(ok, 99) * 1000, 1),
        "max_ms": round(max(ok) * 1000, 1) if ok else None,
    }))


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("streams")
    s.add_argument("--url", required=True)
    s.add_argument("--metrics-url", required=True)
    s.add_argument("--token", required=True)
    s.add_argument("--pid", required=True, type=int)
    s.add_argument("--streams", type=int, default=10000)
    s.add_argument("--events", type=int, default=10)
    s.add_argument("--settle", type=float, default=5)
    s.add_argument("--window", type=float, default=10)
    w = sub.add_parser("slow")
    w.add_argument("--url", required=True)
    w.add_argument("--conns", type=int, default=2000)
    w.add_argument("--duration", type=float, default=30)
    w.add_argument("--ramp", type=float, default=5)
    w.add_argument("--no-reconnect", action="store_true",
                   help="each slow client connects once and stays away once closed")
    a = p.parse_args()
    asyncio.run(streams(a) if a.cmd == "streams" else slow(a))


if __name__ == "__main__":
    main()
