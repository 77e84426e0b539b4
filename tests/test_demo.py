"""`datavisa demo` walks the whole story and leaves nothing running."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path


def _opa_servers(under: Path) -> set[int]:
    """OPA servers whose command line names a path under `under`."""
    pids = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv[0].endswith(b"opa") and b"run" in argv and str(under).encode() in b" ".join(argv):
            pids.add(int(proc.name))
    return pids


def test_demo_tells_the_story_and_exits_cleanly(tmp_path: Path):
    datavisa = Path(sys.executable).with_name("datavisa")
    done = subprocess.run(
        [str(datavisa), "demo", "--duration", "2"],
        capture_output=True,
        text=True,
        timeout=120,
        # Its files, the OPA bundle among them, land under tmp_path.
        env={
            **os.environ,
            "NO_COLOR": "1",
            "TMPDIR": str(tmp_path),
            "XDG_CACHE_HOME": str(tmp_path),
        },
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    steps = [
        "asks for 2s of read access to eu-customer-analytics",
        "no_active_grant",
        "refused: ",
        "nobody may approve their own request",
        "is active until",
        "allow by grant",
        "location_not_permitted",
        "grant_expired",
        "hash chain: intact (3 events)",
        "the decision log",
        "self_approval",
        "decision log: intact (8 records)",
    ]
    positions = [out.find(s) for s in steps]
    assert all(p >= 0 for p in positions), out
    assert positions == sorted(positions), out
    assert "OPA on http://127.0.0.1:" in out
    assert list(tmp_path.glob("datavisa/bundle-*.tar.gz"))  # so its OPA named tmp_path
    assert _opa_servers(tmp_path) == set()
