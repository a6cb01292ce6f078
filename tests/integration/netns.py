"""Real hosts for replication tests: Linux network namespaces joined by veth pairs.

What it is: `Cluster` creates one network namespace per host, each with
  - a management veth to the test's own namespace (10.210.N.2, test side
    10.210.N.1, N a /24 no other address of the test's namespace is in, so
    clusters of concurrent test runs on one machine do not answer for each
    other) that the test uses for S3 calls, and
  - one veth pair per replication link between two hosts (10.211.L.1/.2),
    which is what peers use, what `cut()`/`heal()` set down/up and what
    `shape()` rate-limits (tbf);
hosts have only their connected routes, so a cut link really partitions.
Each host runs `seglake serve --data D --mount MNT --peer ...` started with
`nsenter --net=/run/netns/NAME` (network switched, mount namespace shared, so
the FUSE mount is visible to the test). `Cluster.close()` always kills every
daemon by pid, unmounts, deletes the namespaces and any veth left behind.

What it is not: test cases (test_repl_*.py) or S3 helpers beyond a boto3
client per host.
"""

import os
import signal
import subprocess
import time
import uuid

from seglake_paths import seglake_bin

ACCESS_KEY = "SLTESTACCESSKEY00001"
SECRET_KEY = "sl-test-secret/0123456789+abcdefghijklmnop"
REGION = "us-east-1"
PORT = 9000


def sh(*args, check=True):
    r = subprocess.run(list(args), capture_output=True, text=True, stdin=subprocess.DEVNULL,
                       timeout=60)
    if check and r.returncode != 0:
        raise RuntimeError("%s failed: %s %s" % (" ".join(args), r.stdout, r.stderr))
    return r


def vm_hwm_kib(pid):
    """Peak resident set size of a process (VmHWM), KiB."""
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    return -1


class Host:
    def __init__(self, cluster, idx, name, root):
        self.cluster = cluster
        self.idx = idx
        self.name = name
        self.ns = "sl%s%s" % (cluster.tag, name)
        self.data = os.path.join(root, name, "data")
        self.mnt = os.path.join(root, name, "mnt")
        self.log_path = os.path.join(root, name, "serve.log")
        self.mgmt_net = cluster.free_mgmt_net()
        self.mgmt_ip = "10.210.%d.2" % self.mgmt_net
        self.endpoint = "http://%s:%d" % (self.mgmt_ip, PORT)
        self.link_ip = {}          # other host name -> this host's address on that link
        self.proc = None
        self.peers = []
        self.env = {}
        self.exits = []            # (pid, signal sent, exit status) of every stop
        os.makedirs(os.path.join(root, name))
        os.makedirs(self.mnt)
        sh(seglake_bin(), "init", self.data)

    # ---- process -------------------------------------------------------------
    def start(self, peers=None, env=None, mount=True, extra=()):
        """Starts the daemon; peers: list of Host to pull from."""
        if peers is not None:
            self.peers = list(peers)
        if env is not None:
            self.env = dict(env)
        args = ["nsenter", "--net=/run/netns/%s" % self.ns, seglake_bin(), "serve",
                "--data", self.data, "--listen", "0.0.0.0:%d" % PORT,
                "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY, "--quiet"]
        if mount:
            args += ["--mount", self.mnt]
        for p in self.peers:
            args += ["--peer", "http://%s:%d" % (p.link_ip[self.name], PORT)]
        args += list(extra)
        e = dict(os.environ)
        e.update(self.env)
        self.mounted = mount
        log = open(self.log_path, "ab")
        # each daemon's output starts at a marker, so a failure shows its own part
        log.write(("--- seglake serve started %s ---\n" % time.strftime("%H:%M:%S")).encode())
        log.flush()
        self.log_off = log.tell()
        self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                     stdin=subprocess.DEVNULL, env=e)
        log.close()
        deadline = time.time() + 20
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError("%s: serve exited with status %s: %s" % (
                    self.name, self.proc.returncode, self.log_tail()))
            # this daemon's own line: after a restart the log already holds
            # the previous daemon's
            if "seglake: ready" in self.log_tail(limit=0):
                break
            time.sleep(0.05)
        else:
            raise RuntimeError("%s: serve did not become ready: %s" % (self.name, self.log_tail()))
        self._s3 = None

    def log(self):
        try:
            with open(self.log_path, errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def log_tail(self, limit=12000, off=None):
        """One daemon's log (from off, default the current or last daemon's
        start, to the next daemon's marker): its start and its end when it is
        longer than limit, unless limit is 0 (a sanitizer report starts with
        the error)."""
        try:
            with open(self.log_path, "rb") as f:
                f.seek(getattr(self, "log_off", 0) if off is None else off)
                text = f.read().decode(errors="replace")
        except OSError as e:
            return "(no log: %s)" % e
        text = text.split("--- seglake serve started ", 1)[0]
        if limit and len(text) > limit:
            text = text[:limit // 2] + "\n[... %d bytes ...]\n" % (len(text) - limit) + \
                text[-limit // 2:]
        return text

    @property
    def pid(self):
        return self.proc.pid

    def stop(self, sig=signal.SIGTERM, timeout=15):
        """Stops the daemon by pid; returns its exit status (None if none ran).
        Every stop is recorded in self.exits for Cluster.close() to check."""
        p, self.proc = self.proc, None
        if p is None:
            return None
        sent = None
        if p.poll() is None:
            sent = sig
            try:
                p.send_signal(sig)
                p.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                sent = signal.SIGKILL
                p.kill()
                p.wait(timeout=10)
        self.exits.append((p.pid, sent, p.returncode, getattr(self, "log_off", 0)))
        self.unmount()
        return p.returncode

    def bad_exits(self):
        """Stops that did not end in exit status 0 although the daemon was
        asked to stop cleanly (or had already exited by itself): a crash, a
        sanitizer report (ASan/UBSan/LeakSanitizer exit non-zero), a hang."""
        return [(pid, sent, rc, off) for pid, sent, rc, off in self.exits
                if rc != 0 and sent != signal.SIGKILL]

    def kill9(self):
        self.stop(sig=signal.SIGKILL)

    def unmount(self):
        with open("/proc/mounts") as f:
            mounted = any(line.split()[1] == self.mnt for line in f)
        if mounted:
            if sh("fusermount3", "-u", self.mnt, check=False).returncode != 0:
                sh("fusermount3", "-uz", self.mnt, check=False)

    # ---- clients -------------------------------------------------------------
    @property
    def s3(self):
        if getattr(self, "_s3", None) is None:
            import boto3
            from botocore.config import Config
            self._s3 = boto3.client(
                "s3", endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
                aws_secret_access_key=SECRET_KEY, region_name=REGION,
                config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1},
                              connect_timeout=5, read_timeout=120))
        return self._s3

    def cli(self, *args, check=True, timeout=120):
        """Runs `seglake ARGS` in the test's namespace (reaches hosts by mgmt address)."""
        e = dict(os.environ)
        e["SEGLAKE_PEER_ACCESS_KEY"] = ACCESS_KEY
        e["SEGLAKE_PEER_SECRET_KEY"] = SECRET_KEY
        r = subprocess.run([seglake_bin()] + list(args), capture_output=True, text=True,
                           stdin=subprocess.DEVNULL, timeout=timeout, env=e)
        if check and r.returncode != 0:
            raise RuntimeError("seglake %s: rc %d\n%s%s" % (" ".join(args), r.returncode,
                                                           r.stdout, r.stderr))
        return r

    def status(self):
        import json
        return json.loads(self.cli("repl", "status", "--url", self.endpoint, "--json").stdout)


class Cluster:
    """Hosts in namespaces; links between them. Always call close()."""

    def __init__(self, root):
        self.root = str(root)
        self.tag = uuid.uuid4().hex[:4]
        self.hosts = {}
        self.links = {}          # (a, b) sorted names -> (dev_a, dev_b)
        self.mgmt_devs = []
        self.namespaces = []

    def free_mgmt_net(self):
        """N of a 10.210.N.0/24 that no address of this namespace is in (another
        cluster, possibly of a concurrent test run, may hold 10.210.1.0/24)."""
        used = set()
        for line in sh("ip", "-4", "-o", "addr", "show").stdout.splitlines():
            for word in line.split():
                if word.startswith("10.210."):
                    used.add(int(word.split(".")[2]))
        start = int(self.tag, 16) % 250
        for k in range(250):
            n = 1 + (start + k) % 250
            if n not in used:
                return n
        raise RuntimeError("no free 10.210.N.0/24 for a management link")

    def add_host(self, name):
        idx = len(self.hosts) + 1
        h = Host(self, idx, name, self.root)
        sh("ip", "netns", "add", h.ns)
        self.namespaces.append(h.ns)
        dev = "sl%sm%d" % (self.tag, idx)
        sh("ip", "link", "add", dev, "type", "veth", "peer", "name", "mgmt", "netns", h.ns)
        self.mgmt_devs.append(dev)
        sh("ip", "addr", "add", "10.210.%d.1/24" % h.mgmt_net, "dev", dev)
        sh("ip", "link", "set", dev, "up")
        sh("ip", "-n", h.ns, "addr", "add", "%s/24" % h.mgmt_ip, "dev", "mgmt")
        sh("ip", "-n", h.ns, "link", "set", "mgmt", "up")
        sh("ip", "-n", h.ns, "link", "set", "lo", "up")
        self.hosts[name] = h
        return h

    def link(self, a, b):
        """A veth pair between hosts a and b (names), with 10.211.L.1/.2."""
        n = len(self.links) + 1
        da, db = "l%s" % b.name, "l%s" % a.name
        sh("ip", "link", "add", da, "netns", a.ns, "type", "veth", "peer", "name", db,
           "netns", b.ns)
        sh("ip", "-n", a.ns, "addr", "add", "10.211.%d.1/24" % n, "dev", da)
        sh("ip", "-n", b.ns, "addr", "add", "10.211.%d.2/24" % n, "dev", db)
        sh("ip", "-n", a.ns, "link", "set", da, "up")
        sh("ip", "-n", b.ns, "link", "set", db, "up")
        a.link_ip[b.name] = "10.211.%d.1" % n
        b.link_ip[a.name] = "10.211.%d.2" % n
        self.links[(a.name, b.name)] = (da, db)

    def _link_devs(self, a, b):
        if (a.name, b.name) in self.links:
            da, db = self.links[(a.name, b.name)]
            return (a, da), (b, db)
        db, da = self.links[(b.name, a.name)]
        return (a, da), (b, db)

    def cut(self, a, b):
        for h, dev in self._link_devs(a, b):
            sh("ip", "-n", h.ns, "link", "set", dev, "down")

    def heal(self, a, b):
        for h, dev in self._link_devs(a, b):
            sh("ip", "-n", h.ns, "link", "set", dev, "up")

    def shape(self, a, b, rate="200mbit"):
        """Limits the a-b link to rate in each direction (tbf qdisc in each namespace),
        so a transfer takes seconds; unshape() lifts it, deleting the namespace too."""
        for h, dev in self._link_devs(a, b):
            sh("tc", "-n", h.ns, "qdisc", "replace", "dev", dev, "root", "tbf", "rate", rate,
               "burst", "256kb", "latency", "100ms")

    def unshape(self, a, b):
        for h, dev in self._link_devs(a, b):
            sh("tc", "-n", h.ns, "qdisc", "del", "dev", dev, "root", check=False)

    def close(self, report=True):
        """Stops every daemon, removes namespaces and links. Prints each
        host's exit statuses and log (pytest shows it when the test failed;
        report=False leaves it out unless something failed) and fails if a
        daemon asked to stop cleanly did not exit 0."""
        errors = []
        for h in self.hosts.values():
            try:
                h.stop()
            except Exception as e:  # keep tearing down the rest
                errors.append(e)
                try:
                    if h.proc:
                        h.proc.kill()
                except Exception:
                    pass
                h.unmount()
        for ns in self.namespaces:
            sh("ip", "netns", "del", ns, check=False)
        for dev in self.mgmt_devs:
            if os.path.exists("/sys/class/net/%s" % dev):
                sh("ip", "link", "del", dev, check=False)
        bad = ["host %s: daemon pid %s exited with status %s after %s\n--- %s ---\n%s" % (
            h.name, pid, rc, signal.Signals(sent).name if sent else "exiting by itself",
            h.log_path, h.log_tail(off=off))
            for h in self.hosts.values() for pid, sent, rc, off in h.bad_exits()]
        if report or errors or bad:
            for h in self.hosts.values():
                print("--- host %s: stops (pid, signal, exit status) %s; log %s (last daemon) ---"
                      "\n%s" % (h.name, [e[:3] for e in h.exits], h.log_path, h.log_tail()))
        if errors:
            raise errors[0]
        if bad:
            raise AssertionError("\n".join(bad))


def wait_for(fn, timeout=30, interval=0.05, what="condition"):
    """Polls fn() until it returns a truthy value; returns it or raises."""
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            v = fn()
            if v:
                return v
        except Exception as e:  # not there yet
            last = e
        time.sleep(interval)
    raise AssertionError("timed out waiting for %s (last error: %r)" % (what, last))


def require_root_netns():
    """Skip reason, or None when namespaces, veth and FUSE are available."""
    if not os.access(seglake_bin(), os.X_OK):
        return "seglake binary not found at %s (set SEGLAKE_BIN)" % seglake_bin()
    if os.geteuid() != 0:
        return "needs root"
    if not os.path.exists("/dev/fuse"):
        return "needs /dev/fuse"
    r = subprocess.run(["ip", "netns", "list"], capture_output=True)
    if r.returncode != 0:
        return "ip netns unavailable"
    return None

