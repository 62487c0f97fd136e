"""Atomic replacement of small files: a reader sees the old content or the new, never a part.

Params, catalogs, manifests, summaries and metrics are written to a temporary file in the same
folder, flushed to disk (``fsync``) and renamed over the target (``os.replace``, atomic on POSIX
within one file system); the folder is synced too, so the rename survives a power cut. A crash
or a kill during the write leaves the previous file untouched and, at worst, a hidden
``.<name>.tmp-*`` file next to it.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from collections.abc import Iterator
from pathlib import Path


def _sync_folder(folder: Path) -> None:
    """Flush a folder's entries (the rename) to disk; a no-op where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _sync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def replace_atomically(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; on success it replaces ``path`` atomically.

    The caller writes the whole new content to the yielded path (with any writer: text, JSON,
    Parquet, CSV). When the block raises, the temporary file is removed and ``path`` is left as
    it was. A symbolic link is followed: its target is replaced, the link stays. The new file
    keeps the permissions of the file it replaces.

    Args:
        path: the file to write.

    Yields:
        The temporary file to write (same folder and suffix as ``path``, hidden name).
    """
    target = Path(os.path.realpath(path))
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(
        f".{target.stem}.tmp-{os.getpid()}-{secrets.token_hex(4)}{target.suffix}"
    )
    try:
        yield tmp
        if not tmp.exists():
            raise FileNotFoundError(f"{tmp}: nothing was written to replace {target}")
        with contextlib.suppress(FileNotFoundError):
            os.chmod(tmp, stat.S_IMODE(os.stat(target).st_mode))
        _sync_file(tmp)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise
    _sync_folder(target.parent)


def write_text_atomic(path: str | Path, text: str, encoding: str = "utf-8") -> Path:
    """Write ``text`` to ``path`` atomically (see :func:`replace_atomically`).

    Args:
        path: the file to write.
        text: its whole new content.
        encoding: text encoding.

    Returns:
        ``path`` as a :class:`~pathlib.Path`.
    """
    with replace_atomically(path) as tmp, open(tmp, "x", encoding=encoding) as fh:
        fh.write(text)
    return Path(path)
