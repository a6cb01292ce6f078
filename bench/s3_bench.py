#!/usr/bin/python3
"""S3 daemon benchmark: PUT and GET throughput of `seglake serve` for 4 KiB,
1 MiB and 256 MiB objects at concurrency 1, 8 and 32 (load from
bench/s3bench, SigV4 via libcurl), side by side in the same run with nginx
serving a static file of the same size on loopback (the GET ceiling) and
raw file write+fsync on the same filesystem (the PUT ceiling). Prints a
table, the ratios against the targets, and the daemon's peak RSS.

Client, server and nginx share the machine's cores: on a 2-core box every
figure includes the load generator's own CPU use.

usage: bench/s3_bench.py [--seglake BIN] [--s3bench BIN] [--dir WORKDIR]
                         [--sizes 4K,1M,256M] [--conc 1,8,32] [--seconds 3]
Not here: the load generator itself (s3bench.c), core-only benchmarks.
"""

import argparse
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
AK, SK = "BENCHACCESSKEY000001", "bench-secret-key-0123456789"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def size_of(s):
    mult = {"K": 1024, "M": 1024 ** 2, "G": 1024 ** 3}
    return int(s[:-1]) * mult[s[-1].upper()] if s[-1].upper() in mult else int(s)


def wait_port(port, proc, what, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc.poll() is not None:
            sys.exit("%s exited early (%s)" % (what, proc.returncode))
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit("%s did not start" % what)


def cpu_seconds(pid):
    """User + system CPU seconds the process has used so far."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def per_gib(cpu, result, size):
    """CPU seconds per GiB moved by one s3bench run."""
    gib = result["ops"] * size / float(1 << 30)
    return cpu / gib if gib else 0.0


def vmhwm(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return 0


def hash_rates():
    """MiB/s of MD5 and SHA-256 on one core of this CPU (hashlib uses
    OpenSSL, as the daemon does), over 4 MiB buffers like the daemon's."""
    import hashlib
    buf = os.urandom(4 << 20)
    rates = {}
    for name in ("md5", "sha256"):
        h = hashlib.new(name)
        n = 0
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            h.update(buf)
            n += len(buf)
        rates[name] = n / (time.perf_counter() - t0) / 2**20
    return rates["md5"], rates["sha256"]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--seglake", default=os.path.join(HERE, "..", "build", "cli", "seglake"))
    ap.add_argument("--s3bench", default=None)
    ap.add_argument("--dir", default=None)
    ap.add_argument("--sizes", default="4K,1M,256M")
    ap.add_argument("--conc", default="1,8,32")
    ap.add_argument("--seconds", type=float, default=3.0)
    a = ap.parse_args()
    bench = a.s3bench or os.path.join(os.path.dirname(os.path.abspath(a.seglake)), "..", "bench",
                                      "s3bench")
    for b in (a.seglake, bench):
        if not os.access(b, os.X_OK):
            sys.exit("not executable: %s" % b)
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    work = a.dir or tempfile.mkdtemp(prefix="seglake-bench-", dir="/var/tmp")
    os.makedirs(work, exist_ok=True)
    data = os.path.join(work, "data")
    static = os.path.join(work, "static")
    disk = os.path.join(work, "disk")
    os.makedirs(static, exist_ok=True)
    os.makedirs(disk, exist_ok=True)
    os.chmod(work, 0o755)  # nginx workers run unprivileged
    os.chmod(static, 0o755)
    procs = []
    try:
        subprocess.run([a.seglake, "init", data], check=True, stdout=subprocess.DEVNULL)
        sport = free_port()
        srv = subprocess.Popen([a.seglake, "serve", "--data", data, "--listen",
                                "127.0.0.1:%d" % sport, "--access-key", AK, "--secret-key", SK,
                                "--quiet"], stdout=open(os.path.join(work, "seglake.log"), "w"),
                               stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        procs.append(srv)
        wait_port(sport, srv, "seglake serve")
        nport = free_port()
        conf = os.path.join(work, "nginx.conf")
        with open(conf, "w") as f:
            f.write("""worker_processes 2;
pid %(w)s/nginx.pid;
error_log %(w)s/nginx-error.log;
events { worker_connections 1024; }
http {
  access_log off; sendfile on; tcp_nopush on; keepalive_requests 1000000;
  client_body_temp_path %(w)s/ntmp; proxy_temp_path %(w)s/ntmp;
  fastcgi_temp_path %(w)s/ntmp; uwsgi_temp_path %(w)s/ntmp; scgi_temp_path %(w)s/ntmp;
  server { listen 127.0.0.1:%(p)d; root %(s)s; }
}
""" % {"w": work, "p": nport, "s": static})
        ngx = subprocess.Popen([nginx, "-c", conf, "-g", "daemon off;"],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               stdin=subprocess.DEVNULL)
        procs.append(ngx)
        wait_port(nport, ngx, "nginx")
        endpoint = "http://127.0.0.1:%d" % sport
        common = ["--endpoint", endpoint, "--access-key", AK, "--secret-key", SK,
                  "--bucket", "bench"]

        def run(args):
            r = subprocess.run([bench] + args, capture_output=True, text=True)
            if r.returncode != 0:
                sys.exit("s3bench failed: %s %s" % (r.stdout, r.stderr))
            return json.loads(r.stdout.strip().splitlines()[-1])

        # bucket
        import urllib.request  # noqa: F401  (the bucket is made with curl below)
        subprocess.run(["curl", "-sS", "-f", "-X", "PUT", "--aws-sigv4", "aws:amz:us-east-1:s3",
                        "--user", "%s:%s" % (AK, SK), "-H",
                        "x-amz-content-sha256: UNSIGNED-PAYLOAD", endpoint + "/bench"], check=True)
        rows = []
        peak = 0
        for sz in a.sizes.split(","):
            size = size_of(sz)
            with open(os.path.join(static, "obj-%d" % size), "wb") as f:
                left = size
                while left:
                    n = min(left, 1 << 20)
                    f.write(os.urandom(n))
                    left -= n
            os.chmod(os.path.join(static, "obj-%d" % size), 0o644)
            run(["--op", "put", "--size", str(size), "--concurrency", "1", "--seconds", "0",
                 "--min-ops", "1", "--prefix", "obj-%d" % size] + common)
            for c in [int(x) for x in a.conc.split(",")]:
                base = ["--size", str(size), "--concurrency", str(c), "--seconds", str(a.seconds)]
                t0 = cpu_seconds(srv.pid)
                put = run(["--op", "put", "--prefix", "p%d-c%d" % (size, c)] + base + common)
                put_cpu = cpu_seconds(srv.pid) - t0
                peak = max(peak, vmhwm(srv.pid))
                dsk = run(["--op", "disk", "--dir", disk] + base)
                t0 = cpu_seconds(srv.pid)
                get = run(["--op", "get", "--key", "obj-%d-t0-0" % size] + base + common)
                get_cpu = cpu_seconds(srv.pid) - t0
                peak = max(peak, vmhwm(srv.pid))
                ngx_r = run(["--op", "url", "--url", "http://127.0.0.1:%d/obj-%d" % (nport, size)]
                            + base)
                rows.append((sz, c, put, dsk, get, ngx_r))
                print("%-5s c=%-3d PUT %8.1f MiB/s %8.0f op/s | disk %8.1f MiB/s %7.0f op/s | "
                      "GET %8.1f MiB/s %8.0f op/s | nginx %8.1f MiB/s %8.0f op/s" % (
                          sz, c, put["mib_per_s"], put["ops_per_s"], dsk["mib_per_s"],
                          dsk["ops_per_s"], get["mib_per_s"], get["ops_per_s"],
                          ngx_r["mib_per_s"], ngx_r["ops_per_s"]), flush=True)
                if size >= 64 * 1024 * 1024:
                    # the daemon's own CPU per GiB moved: steadier than MiB/s
                    # when other work shares the cores
                    print("      server CPU: PUT %.2f s/GiB, GET %.2f s/GiB" % (
                        per_gib(put_cpu, put, size), per_gib(get_cpu, get, size)), flush=True)
                if put["errors"] or get["errors"]:
                    print("   errors: put %d get %d (%s %s)" % (
                        put["errors"], get["errors"], put["last_error"], get["last_error"]))
        md5, sha = hash_rates()
        ncpu = os.cpu_count() or 1
        both = 1.0 / (1.0 / md5 + 1.0 / sha)
        print("\nhash floor of a PUT on this CPU: MD5 %.0f MiB/s, SHA-256 %.0f MiB/s on one core."
              "\n  Every PUT byte is MD5'd in order (the plain-MD5 ETag) and SHA-256'd (chunk"
              "\n  addresses): one stream cannot pass %.0f MiB/s, and %d cores doing nothing"
              "\n  else cannot pass %.0f MiB/s (before the body copy, CRC-32C, the page-cache"
              "\n  write and the client's own work on the same cores)." % (
                  md5, sha, min(md5, 2 * both) if ncpu > 1 else both, ncpu, ncpu * both))
        print("\nratios (client, server and nginx share %d cores):" % os.cpu_count())
        ok = True
        for sz, c, put, dsk, get, ngx_r in rows:
            gr = get["mib_per_s"] / ngx_r["mib_per_s"] if ngx_r["mib_per_s"] else 0
            pr = put["mib_per_s"] / dsk["mib_per_s"] if dsk["mib_per_s"] else 0
            line = "  %-5s c=%-3d GET/nginx %5.0f%%  PUT/disk %5.0f%%" % (sz, c, gr * 100, pr * 100)
            if size_of(sz) >= 64 * 1024 * 1024:
                floor = (min(md5, 2 * both) if ncpu > 1 else both) if c == 1 \
                    else min(c, ncpu) * both
                line += "  PUT/hash floor %4.0f%%" % (100 * put["mib_per_s"] / floor)
            if size_of(sz) >= 64 * 1024 * 1024:
                good = gr >= 0.8 and pr >= 0.7
                ok &= good
                line += "   target GET>=80%% PUT>=70%%: %s" % ("met" if good else "MISSED")
            if size_of(sz) <= 4096 and c == 32:
                good = put["ops_per_s"] >= 2000 and get["ops_per_s"] >= 5000
                ok &= good
                line += "   target PUT>=2000/s GET>=5000/s: %s (%.0f / %.0f)" % (
                    "met" if good else "MISSED", put["ops_per_s"], get["ops_per_s"])
            print(line)
        peak = max(peak, vmhwm(srv.pid))
        print("\nseglake serve peak RSS (VmHWM): %.1f MiB (target < 256 MiB: %s)" % (
            peak / 1024.0, "met" if peak < 256 * 1024 else "MISSED"))
        print("all targets met" if ok and peak < 256 * 1024 else "some targets missed")
    finally:
        for p in procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=30)
                except subprocess.TimeoutExpired:
                    p.kill()
        if not a.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
