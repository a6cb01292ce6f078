"""kill -9 crash test of the storage core.

A writer process (tests/tools/crash_writer) commits objects from 4 threads
and prints an ACK line after each commit returns. We SIGKILL it at random
points, several rounds in a row, and after each kill a verifier opens the
data dir (running recovery) and checks that every acknowledged object reads
back byte-identical and that no visible object is incomplete.
"""
import os
import random
import signal
import subprocess
import time

from seglake_paths import build_dir, seglake_bin


def test_kill9_during_writes_loses_no_acked_object(tmp_path):
    tool = os.path.join(build_dir(), "tests", "tools", "crash_writer")
    data = tmp_path / "lake"
    subprocess.run([seglake_bin(), "init", str(data)], check=True, capture_output=True)
    acks = tmp_path / "acks.log"
    rng = random.Random(int(os.environ.get("SEGLAKE_CRASH_SEED", "20261123")))
    total = 0
    for rnd in range(6):
        with open(acks, "a") as out:
            p = subprocess.Popen([tool, "write", str(data), str(rnd), "4"], stdout=out,
                                 stderr=subprocess.PIPE)
        try:
            time.sleep(rng.uniform(0.2, 1.5))
            assert p.poll() is None, p.stderr.read().decode()
        finally:
            p.send_signal(signal.SIGKILL)
            p.wait()
        v = subprocess.run([tool, "verify", str(data), str(acks)], capture_output=True,
                           text=True, timeout=300)
        assert v.returncode == 0, v.stdout + v.stderr
        n = int(v.stdout.split()[1])
        assert n >= total
        total = n
    assert total > 20, "the writer acknowledged too few objects to mean anything"
