"""`seglake serve` itself: first-start credential generation (DATA/credentials,
mode 0600, reused on restart), settings from SEGLAKE_* environment variables
and a config file, the startup lines, bad flags, and a clean exit 0 on
SIGTERM/SIGINT. Not here: S3 behaviour (the other test_s3_*.py files)."""

import os
import signal
import stat
import subprocess

import pytest

from conftest import init_data_dir, seglake_bin, start_server


def read_creds(path):
    out = {}
    for line in open(path):
        if "=" in line and not line.startswith("#"):
            k, _, v = line.partition("=")
            out[k.strip()] = v.strip()
    return out


def test_generated_credentials(tmp_path):
    srv = start_server(tmp_path, credentials=False)
    try:
        path = os.path.join(srv.data_dir, "credentials")
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
        creds = read_creds(path)
        assert creds["access_key"] and len(creds["secret_key"]) >= 40
        log = srv.log()
        assert path in log and "aws --endpoint-url %s" % srv.endpoint in log
        assert creds["secret_key"] not in log
        s3 = srv.client(access_key=creds["access_key"], secret_key=creds["secret_key"])
        s3.create_bucket(Bucket="gen-creds")
    finally:
        assert srv.stop() == 0
    srv2 = start_server(tmp_path, data_dir=srv.data_dir, credentials=False)
    try:
        assert read_creds(path) == creds  # reused, not regenerated
        s3 = srv2.client(access_key=creds["access_key"], secret_key=creds["secret_key"])
        assert "gen-creds" in [b["Name"] for b in s3.list_buckets()["Buckets"]]
    finally:
        assert srv2.stop() == 0


def test_env_and_config_file(tmp_path):
    cfg = tmp_path / "serve.conf"
    cfg.write_text("# test config\nregion = eu-test-1\naccess-key = CFGKEY0000000001\n"
                   "secret-key = cfg-secret\nquiet = true\n")
    srv = start_server(tmp_path, credentials=False, region="eu-test-1",
                       access_key="CFGKEY0000000001", secret_key="cfg-secret",
                       env={"SEGLAKE_CONFIG": str(cfg)})
    try:
        s3 = srv.client()
        s3.create_bucket(Bucket="cfg-bucket",
                         CreateBucketConfiguration={"LocationConstraint": "eu-test-1"})
        assert s3.get_bucket_location(Bucket="cfg-bucket")["LocationConstraint"] == "eu-test-1"
    finally:
        assert srv.stop() == 0
    assert " PUT /cfg-bucket " not in srv.log()  # quiet from the file (read after the stop: whole)
    # the environment wins over the file
    srv = start_server(tmp_path, credentials=False, access_key="ENVKEY0000000001",
                       secret_key="env-secret", region="eu-test-1",
                       env={"SEGLAKE_CONFIG": str(cfg), "SEGLAKE_ACCESS_KEY": "ENVKEY0000000001",
                            "SEGLAKE_SECRET_KEY": "env-secret"})
    try:
        srv.client().list_buckets()
    finally:
        assert srv.stop() == 0


def test_bad_flags(tmp_path):
    d = init_data_dir(tmp_path / "d")
    for args in (["--bogus"], ["--listen", "127.0.0.1:notaport"], ["--max-object-size", "12Q"],
                 ["--access-key", "only-key"]):
        r = subprocess.run([seglake_bin(), "serve", "--data", d] + args, capture_output=True,
                           text=True, timeout=20, stdin=subprocess.DEVNULL)
        assert r.returncode != 0 and r.stderr, args
    r = subprocess.run([seglake_bin(), "serve", "--data", str(tmp_path / "missing")],
                       capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL)
    assert r.returncode != 0 and "missing" in r.stderr


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_signal_exit_zero(tmp_path, sig):
    srv = start_server(tmp_path)
    srv.client().create_bucket(Bucket="sig-bucket")
    os.kill(srv.pid, sig)
    assert srv.proc.wait(timeout=30) == 0
    srv.stop()
    assert "stopped" in srv.log()
