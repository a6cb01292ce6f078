"""Replication across three hosts (chain and ring) and with a skewed clock.

Hosts are network namespaces joined by veth pairs (netns.py). Chain A-B-C:
changes made at either end reach the other end through B (forwarding). Ring
A<-C<-B<-A (each host pulls from one neighbour only): changes go round once
and stop (oplog heads settle). Skew: one host's clock runs five minutes
behind (SEGLAKE_TEST_CLOCK_OFFSET_MS); the HLC still orders its later writes
after what it has seen, so the hosts converge without conflicts.
"""
import json
import os
import time

import pytest

from netns import Cluster, require_root_netns, wait_for

pytestmark = pytest.mark.skipif(require_root_netns() is not None,
                                reason=str(require_root_netns()))


def body(h, bucket, key):
    return h.s3.get_object(Bucket=bucket, Key=key)["Body"].read()


def same(x, y):
    r = x.cli("repl", "validate", "--peer", x.endpoint, "--peer", y.endpoint, "--chunks",
              check=False)
    return r.returncode == 0


def wait_all_same(hosts, timeout=40):
    for y in hosts[1:]:
        wait_for(lambda: same(hosts[0], y), timeout=timeout, interval=0.3,
                 what="%s and %s to converge" % (hosts[0].name, y.name))


def heads(hosts):
    return [h.status()["head"] for h in hosts]


@pytest.fixture
def trio(tmp_path):
    c = Cluster(tmp_path)
    try:
        a, b, cc = c.add_host("a"), c.add_host("b"), c.add_host("c")
        c.link(a, b)
        c.link(b, cc)
        c.link(cc, a)
        yield c, a, b, cc
    finally:
        c.close()


def test_chain_then_ring(trio):
    _, a, b, c = trio
    # chain A - B - C: A and C never talk to each other
    a.start(peers=[b])
    b.start(peers=[a, c])
    c.start(peers=[b])
    os.mkdir(os.path.join(a.mnt, "chain"))
    with open(os.path.join(a.mnt, "chain", "from-a.txt"), "wb") as f:
        f.write(b"A at one end")
    wait_for(lambda: body(c, "chain", "from-a.txt") == b"A at one end", what="A's file on C")
    c.s3.put_object(Bucket="chain", Key="from-c.txt", Body=b"C at the other end")
    wait_for(lambda: open(os.path.join(a.mnt, "chain", "from-c.txt"), "rb").read() ==
             b"C at the other end", what="C's file in A's mount")
    wait_all_same([a, b, c])

    # ring A <- C <- B <- A
    for h in (a, b, c):
        h.stop()
    a.start(peers=[c])
    b.start(peers=[a])
    c.start(peers=[b])
    b.s3.put_object(Bucket="chain", Key="from-b.txt", Body=b"B in the ring")
    a.s3.put_object(Bucket="chain", Key="from-a.txt", Body=b"A overwrites")
    wait_for(lambda: body(a, "chain", "from-b.txt") == b"B in the ring", what="B's file on A")
    wait_for(lambda: body(b, "chain", "from-a.txt") == b"A overwrites", what="A's file on B")
    wait_all_same([a, b, c])
    # the ring does not loop: oplog heads settle
    h1 = heads([a, b, c])
    time.sleep(1.5)
    assert heads([a, b, c]) == h1
    for h in (a, b, c):
        cf = json.loads(h.cli("repl", "conflicts", "--url", h.endpoint, "--json").stdout)
        assert cf["conflicts"] == [], (h.name, cf)


def test_skewed_clock_converges(tmp_path):
    c = Cluster(tmp_path)
    try:
        a, b = c.add_host("a"), c.add_host("b")
        c.link(a, b)
        a.start(peers=[b])
        b.start(peers=[a], env={"SEGLAKE_TEST_CLOCK_OFFSET_MS": "-300000"})
        a.s3.create_bucket(Bucket="skew")
        a.s3.put_object(Bucket="skew", Key="k", Body=b"first, on A")
        wait_for(lambda: body(b, "skew", "k") == b"first, on A", what="A's write on B")
        # B's wall clock is 5 minutes behind, but it has seen A's write:
        # its overwrite orders after it everywhere
        b.s3.put_object(Bucket="skew", Key="k", Body=b"second, on B")
        wait_for(lambda: body(a, "skew", "k") == b"second, on B", what="B's overwrite on A")
        # and back: A overwrites what B wrote
        b.s3.put_object(Bucket="skew", Key="j", Body=b"B")
        wait_for(lambda: body(a, "skew", "j") == b"B", what="j on A")
        a.s3.put_object(Bucket="skew", Key="j", Body=b"A after B")
        wait_for(lambda: body(b, "skew", "j") == b"A after B", what="A's overwrite on B")
        wait_all_same([a, b])
        for h in (a, b):
            cf = json.loads(h.cli("repl", "conflicts", "--url", h.endpoint, "--json").stdout)
            assert cf["conflicts"] == [], (h.name, cf)
    finally:
        c.close()
