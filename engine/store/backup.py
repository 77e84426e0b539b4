"""A consistent copy of an SQLite store while engines keep writing to it, and putting
such a copy back in place.

The copy uses SQLite's online backup API: page by page, restarting when a writer changes
a page already copied, so the copy is one committed state of the whole file (the WAL
included) and no engine has to stop. Each copy is written beside its target and renamed
into place only when complete, so a crash leaves the old file or none, never half of one.
A PostgreSQL store is backed up with pg_dump (docs/deploy.md, "Backups and restores").
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Callable
from pathlib import Path

from ..model.errors import DataVisaError

PAGES_A_STEP = 1024  # pages copied between two looks at the progress


def copy_sqlite(
    source: Path, dest: Path, progress: Callable[[int, int], None] = lambda done, total: None
) -> int:
    """Copy the SQLite database at `source` to `dest` (which must not exist) with the
    online backup API; `progress(done, total)` after each step, in pages. The pages
    copied."""
    if dest.exists():
        raise DataVisaError(f"{dest} exists: name a new file")
    if not source.is_file():
        raise DataVisaError(f"{source} is no SQLite database file")
    dest.parent.mkdir(parents=True, exist_ok=True)
    partial = dest.with_name(dest.name + ".partial")
    partial.unlink(missing_ok=True)
    try:
        src = sqlite3.connect(f"file:{source}?mode=ro", uri=True)
        try:
            out = sqlite3.connect(partial)
            try:
                step = lambda _status, left, total: progress(total - left, total)  # noqa: E731
                src.backup(out, pages=PAGES_A_STEP, progress=step)
                pages = out.execute("PRAGMA page_count").fetchone()[0]
                if out.execute("PRAGMA integrity_check").fetchone()[0] != "ok":
                    raise DataVisaError(f"the copy of {source} fails SQLite's integrity check")
                out.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
            finally:
                out.close()
        finally:
            src.close()
        fd = os.open(partial, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        partial.replace(dest)
    except sqlite3.Error as e:
        raise DataVisaError(f"cannot copy {source}: {e}") from e
    finally:
        partial.unlink(missing_ok=True)
    return pages
