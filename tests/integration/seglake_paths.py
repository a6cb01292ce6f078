"""Where the built binaries are: $SEGLAKE_BUILD (a meson build dir) or ./build."""
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def build_dir():
    return os.environ.get("SEGLAKE_BUILD", os.path.join(ROOT, "build"))


def seglake_bin():
    return os.environ.get("SEGLAKE_BIN", os.path.join(build_dir(), "cli", "seglake"))
