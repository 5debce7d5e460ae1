"""The host program (`provisioner/hostcmd`) packed as one zip archive for the receiver role.

Python imports a package straight from a zip on sys.path, so the host gets one file instead of a copy per
module: a run with nothing to change checks one checksum. The archive is the same bytes for the same sources
(sorted entries, fixed timestamps and modes), so Ansible's copy sees no change until the code changes.
"""

from __future__ import annotations

import hashlib
import io
import os
import zipfile
from pathlib import Path

from . import paths

SOURCE = Path(__file__).resolve().parent / "hostcmd"
EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def pack(source: Path = SOURCE) -> bytes:
    """hostcmd/**/*.py as a zip whose entries are named hostcmd/...; deterministic."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for path in sorted(source.rglob("*.py")):
            if "__pycache__" in path.parts:
                continue
            info = zipfile.ZipInfo(f"{source.name}/{path.relative_to(source).as_posix()}", EPOCH)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, path.read_bytes())
    return buffer.getvalue()


def archive(source: Path = SOURCE) -> Path:
    """The archive in the controller's cache, named by its content (written once, atomically)."""
    data = pack(source)
    cache = paths.data_dir() / "cache"
    cache.mkdir(parents=True, exist_ok=True, mode=0o700)
    path = cache / f"hostcmd-{hashlib.sha256(data).hexdigest()[:16]}.zip"
    if not path.exists() or path.read_bytes() != data:
        tmp = path.with_name(f".{path.name}.{os.getpid()}")
        tmp.write_bytes(data)
        os.replace(tmp, path)
    return path
