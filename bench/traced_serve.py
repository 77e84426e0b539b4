"""`datavisa serve` under tracemalloc, for finding what grows (bench/soak.py --trace DIR).

    python bench/traced_serve.py DIR EVERY_S serve --listen ... --db ...

Runs the CLI in this process with tracemalloc tracing 25 frames (env TRACE_FRAMES: 1 is
cheap enough for minutes of load), and every EVERY_S seconds writes a snapshot to
DIR/snapshot-<seconds>.pickle. Compare two with `compare`:

    python bench/traced_serve.py compare DIR/snapshot-60.pickle DIR/snapshot-540.pickle
"""

from __future__ import annotations

import os
import sys
import threading
import time
import tracemalloc
from pathlib import Path


def _snapshots(folder: Path, every_s: float) -> None:
    started = time.monotonic()
    while True:
        time.sleep(every_s)
        tracemalloc.take_snapshot().filter_traces(
            [tracemalloc.Filter(False, tracemalloc.__file__)]
        ).dump(str(folder / f"snapshot-{round(time.monotonic() - started)}.pickle"))


def compare(old: str, new: str, top: int = 25) -> None:
    before, after = tracemalloc.Snapshot.load(old), tracemalloc.Snapshot.load(new)
    total = sum(s.size for s in after.statistics("filename")) / 2**20
    print(f"traced now {total:.1f} MiB")
    for stat in after.compare_to(before, "traceback")[:top]:
        print(f"{stat.size_diff / 2**10:+10.1f} KiB {stat.count_diff:+8d} blocks")
        for line in stat.traceback.format()[-12:]:
            print("    " + line)


def main() -> None:
    if sys.argv[1] == "compare":
        compare(sys.argv[2], sys.argv[3])
        return
    folder, every_s = Path(sys.argv[1]), float(sys.argv[2])
    folder.mkdir(parents=True, exist_ok=True)
    tracemalloc.start(int(os.environ.get("TRACE_FRAMES", "25")))
    threading.Thread(target=_snapshots, args=(folder, every_s), daemon=True).start()
    from datavisa.cli.main import cli

    sys.argv = ["datavisa", *sys.argv[3:]]
    cli()


if __name__ == "__main__":
    main()
