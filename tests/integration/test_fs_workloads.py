"""test_fs_workloads.py - real programs inside a `seglake mount`: tar round
trip with checksums, cp -a and rsync -a preserving modes and times, git,
sqlite, a 1 GiB file by sha256 (and its S3 ETag), find over 10,000 files.
"""
import hashlib
import os
import sqlite3
import stat
import subprocess
import tarfile

import pytest

from fsutil import Mount, have, lake, local_init, stat_meta  # noqa: F401

MiB = 1 << 20


def run(cmd, cwd=None, env=None):
    r = subprocess.run(cmd, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                       text=True, timeout=300)
    assert r.returncode == 0, "%s failed (%d): %s %s" % (cmd, r.returncode, r.stdout, r.stderr)
    return r.stdout


def tree_digest(root, times=False):
    """{relative path: (type, mode, content digest or link target[, mtime])}."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            rel = os.path.relpath(p, root)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                v = ("l", os.readlink(p))
            elif stat.S_ISDIR(st.st_mode):
                v = ("d", stat.S_IMODE(st.st_mode))
            else:
                with open(p, "rb") as f:
                    v = ("f", stat.S_IMODE(st.st_mode), hashlib.sha256(f.read()).hexdigest())
            if times and not stat.S_ISLNK(st.st_mode) and not stat.S_ISDIR(st.st_mode):
                v = v + (int(st.st_mtime),)
            out[rel] = v
    return out


def make_source_tree(dst):
    """A real source tree (this project's sources) with varied modes and times."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    os.makedirs(dst)
    for sub in ("common", "core", "fs", "store", "meta", "cli", "tests"):
        src = os.path.join(root, sub)
        if os.path.isdir(src):
            run(["cp", "-r", src, os.path.join(dst, sub)])
    for dirpath, _, files in os.walk(dst):
        for i, f in enumerate(files):
            p = os.path.join(dirpath, f)
            os.chmod(p, (0o600, 0o644, 0o755, 0o640)[i % 4])
            os.utime(p, (1_500_000_000 + i * 7, 1_500_000_000 + i * 7))
    os.symlink("core/core.h", os.path.join(dst, "link-to-header"))
    with open(os.path.join(dst, "empty-file"), "w"):
        pass
    os.mkdir(os.path.join(dst, "empty-dir"))
    return dst


def test_tar_round_trip(lake, tmp_path):
    src = "/usr/share/doc"
    if not os.path.isdir(src):
        pytest.skip("no /usr/share/doc")
    archive = tmp_path / "in.tar"
    # a bounded subset: the first 150 package directories
    names = sorted(os.listdir(src))[:150]
    run(["tar", "cf", str(archive), "-C", src] + names)
    dst = lake.mnt / "bk1" / "doc"
    os.mkdir(dst)
    run(["tar", "xf", str(archive), "-C", str(dst)])
    extracted = tmp_path / "ref"
    os.mkdir(extracted)
    run(["tar", "xf", str(archive), "-C", str(extracted)])
    want = tree_digest(extracted)
    assert len(want) > 100
    assert tree_digest(dst) == want
    out = tmp_path / "out.tar"
    run(["tar", "cf", str(out), "-C", str(dst), "."])
    back = tmp_path / "back"
    os.mkdir(back)
    run(["tar", "xf", str(out), "-C", str(back)])
    assert tree_digest(back) == want
    with tarfile.open(out) as t:
        assert len(t.getnames()) >= len(want)


def test_cp_a_and_rsync_a_preserve_modes_and_times(lake, tmp_path):
    src = make_source_tree(str(tmp_path / "src"))
    want = tree_digest(src, times=True)
    run(["cp", "-a", src, str(lake.mnt / "bk1" / "cp")])
    assert tree_digest(lake.mnt / "bk1" / "cp", times=True) == want
    if not have("rsync"):
        pytest.skip("rsync not installed")
    run(["rsync", "-a", src + "/", str(lake.mnt / "bk1" / "rs") + "/"])
    assert tree_digest(lake.mnt / "bk1" / "rs", times=True) == want
    # a second rsync finds nothing to transfer
    out = run(["rsync", "-a", "--itemize-changes", src + "/", str(lake.mnt / "bk1" / "rs") + "/"])
    assert out.strip() == "", out
    # and the times survive a remount (they are stored, not cached)
    lake.stop()
    lake.start()
    assert tree_digest(lake.mnt / "bk1" / "rs", times=True) == want


def test_git(lake, tmp_path):
    if not have("git"):
        pytest.skip("git not installed")
    env = dict(os.environ, HOME=str(tmp_path), GIT_AUTHOR_NAME="T", GIT_AUTHOR_EMAIL="t@e",
               GIT_COMMITTER_NAME="T", GIT_COMMITTER_EMAIL="t@e", GIT_CONFIG_NOSYSTEM="1")
    repo = lake.mnt / "bk1" / "repo"
    os.mkdir(repo)
    run(["git", "init", "-q", "-b", "main"], cwd=repo, env=env)
    for i in range(30):
        (repo / ("file%d.txt" % i)).write_text("line %d\n" % i)
    os.makedirs(repo / "src" / "deep")
    (repo / "src" / "deep" / "x.c").write_text("int main(void) { return 0; }\n")
    run(["git", "add", "-A"], cwd=repo, env=env)
    run(["git", "commit", "-q", "-m", "first"], cwd=repo, env=env)
    run(["git", "checkout", "-q", "-b", "feature"], cwd=repo, env=env)
    (repo / "file0.txt").write_text("changed\n")
    os.unlink(repo / "file1.txt")
    run(["git", "commit", "-q", "-am", "second"], cwd=repo, env=env)
    log = run(["git", "log", "--format=%s"], cwd=repo, env=env)
    assert log.split() == ["second", "first"]
    run(["git", "checkout", "-q", "main"], cwd=repo, env=env)
    assert (repo / "file0.txt").read_text() == "line 0\n"
    assert (repo / "file1.txt").exists()
    assert run(["git", "status", "--porcelain"], cwd=repo, env=env) == ""
    run(["git", "fsck", "--strict"], cwd=repo, env=env)


def test_sqlite(lake):
    path = lake.mnt / "bk1" / "db.sqlite"
    con = sqlite3.connect(str(path))
    con.execute("create table t (id integer primary key, v text)")
    with con:
        con.executemany("insert into t (v) values (?)", (("row %d" % i,) for i in range(20000)))
    for k in range(5):
        with con:
            con.execute("update t set v = v || ? where id % 7 = ?", ("!", k))
    with con:
        con.execute("delete from t where id % 10 = 0")
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    con.close()
    lake.stop()
    lake.start()
    con = sqlite3.connect(str(path))
    assert con.execute("pragma integrity_check").fetchone()[0] == "ok"
    assert con.execute("select count(*) from t").fetchone()[0] == 18000
    assert con.execute("select v from t where id = 14").fetchone()[0] == "row 13!"
    con.close()


def test_one_gib_file(lake):
    path = lake.mnt / "bk1" / "gig"
    sha, md5 = hashlib.sha256(), hashlib.md5()
    block = os.urandom(4 * MiB)
    with open(path, "wb") as f:
        for i in range(256):
            b = block[i:] + block[:i]  # distinct chunks, no dedupe shortcut
            sha.update(b)
            md5.update(b)
            f.write(b)
    assert os.stat(path).st_size == 1 << 30
    rsha = hashlib.sha256()
    with open(path, "rb") as f:
        while True:
            b = f.read(4 * MiB)
            if not b:
                break
            rsha.update(b)
    assert rsha.hexdigest() == sha.hexdigest()
    lake.stop()
    meta = stat_meta(lake.data, "bk1/gig")
    assert meta["size"] == str(1 << 30)
    assert meta["etag"] == md5.hexdigest()  # written start to end: a plain MD5 ETag


def test_find_over_10000_files(lake):
    root = lake.mnt / "bk1" / "many"
    os.mkdir(root)
    for d in range(100):
        os.mkdir(root / ("d%02d" % d))
        for i in range(100):
            os.close(os.open(root / ("d%02d" % d) / ("f%03d" % i), os.O_CREAT | os.O_WRONLY))
    out = run(["find", str(root), "-type", "f"])
    assert len(out.split()) == 10000
    lake.stop()
    lake.start()  # cold caches
    out = run(["find", str(root), "-name", "f05*"])
    assert len(out.split()) == 1000
    out = run(["find", str(root), "-type", "d"])
    assert len(out.split()) == 101
