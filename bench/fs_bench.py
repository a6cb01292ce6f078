#!/usr/bin/python3
"""fs_bench.py - the FUSE benchmark: fio and a metadata microbenchmark, side by
side in one run, on

  seglake  the Seglake mount (`seglake serve --mount`)
  raw      a plain directory on the filesystem holding the data dir (the ceiling)
  s3fs     s3fs-fuse mounting a bucket of the same Seglake S3 daemon (a peer)
  rclone   `rclone mount --vfs-cache-mode writes` of a bucket of the same daemon

Prints figures and ratios; asserts nothing. Run as root (mounts, drop_caches):

  /usr/bin/python3 bench/fs_bench.py [--size-mib 1024] [--files 10000]
      [--peer-files 1000] [--targets seglake,raw,s3fs,rclone] [--build build]
      [--only fio|metadata]

s3fs and rclone do one or more HTTP requests per metadata operation, so they
run the metadata benchmark on --peer-files files (ops/s stay comparable).
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

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
AK, SK = "BENCHACCESSKEY000001", "benchsecretkey0000000000000000000000001"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def mounted(path):
    path = os.path.realpath(path)
    with open("/proc/self/mounts") as f:
        return any(line.split()[1] == path for line in f)


def wait_for(cond, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        if cond():
            return
        time.sleep(0.1)
    raise RuntimeError("timed out waiting for " + what)


def drop_caches():
    subprocess.run(["sync"])
    try:
        with open("/proc/sys/vm/drop_caches", "w") as f:
            f.write("3\n")
        return True
    except OSError:
        return False


def fio(directory, name, rw, bs, size_mib, extra=()):
    cmd = ["fio", "--name=" + name, "--directory=" + directory, "--filename=" + name,
           "--rw=" + rw, "--bs=" + bs, "--size=%dm" % size_mib, "--ioengine=psync",
           "--output-format=json"] + list(extra)
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=1800)
    if out.returncode != 0:
        raise RuntimeError("fio %s failed: %s" % (name, out.stderr.strip()[-300:]))
    job = json.loads(out.stdout)["jobs"][0]
    side = job["read"] if rw in ("read", "randread") else job["write"]
    return side["bw_bytes"] / 2**20, side["iops"]


def md5_rate():
    """MiB/s of MD5 (OpenSSL, through hashlib) on one core, 4 MiB buffers."""
    import hashlib
    buf = os.urandom(4 << 20)
    h = hashlib.md5()
    n = 0
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < 1.0:
        h.update(buf)
        n += len(buf)
    return n / (time.perf_counter() - t0) / 2**20


def metadata(directory, n):
    """ops/s for create, stat, stat after dropping the kernel's caches, readdir
    (entries/s), rename, unlink of n files."""
    d = os.path.join(directory, "meta")
    os.makedirs(d, exist_ok=True)
    res = {}
    t = time.time()
    for i in range(n):
        with open(os.path.join(d, "f%06d" % i), "wb") as f:
            f.write(b"x")
    res["create"] = n / (time.time() - t)
    t = time.time()
    for i in range(n):
        os.stat(os.path.join(d, "f%06d" % i))
    res["stat"] = n / (time.time() - t)
    drop_caches()  # the kernel forgets the names: every stat is a lookup
    t = time.time()
    for i in range(n):
        os.stat(os.path.join(d, "f%06d" % i))
    res["stat cold"] = n / (time.time() - t)
    t = time.time()
    got = len(os.listdir(d))
    res["readdir"] = got / max(time.time() - t, 1e-6)
    t = time.time()
    for i in range(n):
        os.rename(os.path.join(d, "f%06d" % i), os.path.join(d, "g%06d" % i))
    res["rename"] = n / (time.time() - t)
    t = time.time()
    for i in range(n):
        os.unlink(os.path.join(d, "g%06d" % i))
    res["unlink"] = n / (time.time() - t)
    return res


class Lake:
    def __init__(self, work, build):
        self.bin = os.path.join(ROOT, build, "cli", "seglake")
        self.data = os.path.join(work, "data")
        self.mnt = os.path.join(work, "mnt")
        os.makedirs(self.mnt)
        subprocess.run([self.bin, "init", self.data], check=True, capture_output=True)
        self.port = free_port()
        self.log = open(os.path.join(work, "serve.log"), "w")
        self.proc = subprocess.Popen(
            [self.bin, "serve", "--data", self.data, "--listen", "127.0.0.1:%d" % self.port,
             "--access-key", AK, "--secret-key", SK, "--mount", self.mnt, "--quiet"],
            stdout=self.log, stderr=subprocess.STDOUT)
        wait_for(lambda: mounted(self.mnt), 30, "the seglake mount")
        for b in ("bench", "bench-s3fs", "bench-rclone"):
            os.mkdir(os.path.join(self.mnt, b))

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if mounted(self.mnt):
            subprocess.run(["fusermount3", "-u", self.mnt])


def mount_s3fs(lake, work):
    mnt = os.path.join(work, "s3fs")
    os.makedirs(mnt)
    pw = os.path.join(work, "s3fs.passwd")
    with open(pw, "w") as f:
        f.write("%s:%s\n" % (AK, SK))
    os.chmod(pw, 0o600)
    subprocess.run(["s3fs", "bench-s3fs", mnt, "-o", "url=http://127.0.0.1:%d" % lake.port,
                    "-o", "use_path_request_style", "-o", "passwd_file=" + pw,
                    "-o", "endpoint=us-east-1"], check=True)
    wait_for(lambda: mounted(mnt), 30, "the s3fs mount")
    return mnt, None


def mount_rclone(lake, work):
    mnt = os.path.join(work, "rclone")
    os.makedirs(mnt)
    env = dict(os.environ)
    env.pop("AWS_CA_BUNDLE", None)  # Debian's rclone refuses to start with it set
    env.update({"RCLONE_CONFIG_SL_TYPE": "s3", "RCLONE_CONFIG_SL_PROVIDER": "Other",
                "RCLONE_CONFIG_SL_ENDPOINT": "http://127.0.0.1:%d" % lake.port,
                "RCLONE_CONFIG_SL_ACCESS_KEY_ID": AK, "RCLONE_CONFIG_SL_SECRET_ACCESS_KEY": SK,
                "RCLONE_CONFIG_SL_FORCE_PATH_STYLE": "true"})
    proc = subprocess.Popen(["rclone", "mount", "sl:bench-rclone", mnt, "--vfs-cache-mode",
                             "writes", "--cache-dir", os.path.join(work, "rclone-cache")],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(lambda: mounted(mnt), 30, "the rclone mount")
    return mnt, proc


def unmount(mnt, proc):
    if mounted(mnt):
        subprocess.run(["fusermount3", "-u", mnt])
    if proc and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()


def run_target(name, directory, args):
    size, files = args.size_mib, args.files if name in ("seglake", "raw") else args.peer_files
    r = {}
    if args.only != "metadata":
        r.update(run_fio(directory, size))
    if args.only != "fio":
        for k, v in metadata(directory, files).items():
            r[k + " ops/s"] = v
    r["files"] = files
    return r


def run_fio(directory, size):
    r = {}
    r["seq write MiB/s"], _ = fio(directory, "seq", "write", "1m", size, ["--end_fsync=1"])
    drop_caches()
    r["seq read MiB/s"], _ = fio(directory, "seq", "read", "1m", size)
    rnd = min(256, size)
    _, r["4k randwrite IOPS"] = fio(directory, "rnd", "randwrite", "4k", rnd,
                                    ["--runtime=10", "--time_based", "--end_fsync=1"])
    drop_caches()
    _, r["4k randread IOPS"] = fio(directory, "rnd", "randread", "4k", rnd,
                                   ["--runtime=10", "--time_based"])
    for f in ("seq", "rnd"):
        try:
            os.unlink(os.path.join(directory, f))
        except OSError:
            pass
    return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size-mib", type=int, default=1024)
    ap.add_argument("--files", type=int, default=10000)
    ap.add_argument("--peer-files", type=int, default=1000)
    ap.add_argument("--targets", default="seglake,raw,s3fs,rclone")
    ap.add_argument("--build", default=os.environ.get("SEGLAKE_BUILD", "build"))
    ap.add_argument("--workdir", default="/var/tmp")
    ap.add_argument("--only", choices=("fio", "metadata"),
                    help="run only the fio part or only the metadata part")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("fs_bench: run as root (mounts, drop_caches)")
    targets = args.targets.split(",")
    tools = ["fusermount3"] + [t for t in ("s3fs", "rclone") if t in targets]
    if args.only != "metadata":
        tools.append("fio")
    for tool in tools:
        if not shutil.which(tool):
            sys.exit("fs_bench: %s is missing (bash packaging/install-deps.sh)" % tool)
    work = tempfile.mkdtemp(prefix="seglake-fsbench-", dir=args.workdir)
    results, mounts = {}, []
    lake = None
    try:
        lake = Lake(work, args.build)
        dirs = {"seglake": os.path.join(lake.mnt, "bench"),
                "raw": os.path.join(work, "raw")}
        os.makedirs(dirs["raw"])
        if "s3fs" in targets:
            mnt, proc = mount_s3fs(lake, work)
            mounts.append((mnt, proc))
            dirs["s3fs"] = mnt
        if "rclone" in targets:
            mnt, proc = mount_rclone(lake, work)
            mounts.append((mnt, proc))
            dirs["rclone"] = mnt
        load = os.getloadavg()[0]
        for t in targets:
            print("fs_bench: %s ..." % t, file=sys.stderr, flush=True)
            try:
                results[t] = run_target(t, dirs[t], args)
            except Exception as e:  # a peer failing must not hide the other figures
                print("fs_bench: %s failed: %s" % (t, e), file=sys.stderr)
        metrics = [m for m in next(iter(results.values())) if m != "files"] if results else []
        print("\nFUSE benchmark (%d MiB sequential, 4 KiB random on %d MiB; metadata on %d "
              "files, %d for s3fs/rclone); load average at start %.2f, 2 cores shared by "
              "client and server" % (args.size_mib, min(256, args.size_mib), args.files,
                                     args.peer_files, load))
        cols = [t for t in targets if t in results]
        print("%-22s" % "metric" + "".join("%14s" % c for c in cols) +
              "%12s%12s" % ("vs raw", "vs s3fs"))
        for m in metrics:
            row = "%-22s" % m + "".join("%14.1f" % results[c][m] for c in cols)
            s = results.get("seglake", {}).get(m)
            for ref in ("raw", "s3fs"):
                r = results.get(ref, {}).get(m)
                row += "%12s" % ("%.2fx" % (s / r) if s and r else "-")
            print(row)
        print("\ntargets: seq write >= 0.70x raw, seq read >= 0.80x raw, metadata ops >= 10x s3fs")
        sw = results.get("seglake", {}).get("seq write MiB/s")
        if sw:
            md5 = md5_rate()
            print("seq write / MD5 floor: %.2fx. A file written start to end gets the plain-MD5\n"
                  "  ETag, so its bytes are MD5'd in order: %.0f MiB/s on one core of this CPU\n"
                  "  bounds one writer whatever the disk does." % (sw / md5, md5))
    finally:
        for mnt, proc in mounts:
            unmount(mnt, proc)
        if lake:
            lake.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
