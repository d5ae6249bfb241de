"""Claims on prompts, so that generations sharing one cache folder never answer the same prompt twice.

Two `ur4rec generate` (two datasets, two machines on one shared folder, a stage and a manual run) that start
on the same cache would each find the same prompts missing and each generate all of them. Instead every
generation takes its missing prompts a chunk at a time, under a short exclusive lock on
`<cache>.claims/lock` (`fcntl.flock`):

1. it reads the shards written since its last look (what others have finished),
2. it reads the live claims of the others: each generation holds an exclusive `flock` on its own claim file
   `<cache>.claims/<host>-<pid>-<random>.claim` for as long as it runs, listing the keys it is answering; a
   claim file whose lock can be taken belongs to a process that died (the kernel released its lock), so it is
   removed and its keys are free again,
3. it writes the keys of its next chunk (uncached, unclaimed) into its claim file, and lets the lock go.

A chunk's answers are written to the cache (one shard per `llm.flush_every`) before its keys are released, so
another generation sees each prompt either claimed or answered. When only prompts claimed by others are
left, a generation waits for them and then takes what they left (a failed prompt, a dead process's chunk).

`flock` works between processes of one machine and on file systems that pass it on (local disks, NFSv4,
CephFS, Lustre with `flock` mounted); on one that does not, two machines may each generate a prompt the other
claimed, which costs time and never changes an output (the cache serves one answer per question).
A cache that cannot be written (mounted read-only) takes no claims: nothing can be generated into it anyway.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import time
import uuid
from pathlib import Path
from typing import IO, Iterator

log = logging.getLogger(__name__)

SUFFIX = ".claim"


class Claims:
    """This process's claim file in a cache's claims folder (a context manager)."""

    def __init__(self, cache_root: Path):
        self.dir = cache_root.with_name(cache_root.name + ".claims")
        self.path = self.dir / f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:8]}{SUFFIX}"
        self._fh: IO[str] | None = None

    @property
    def active(self) -> bool:
        return self._fh is not None

    def __enter__(self) -> Claims:
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._fh = open(self.path, "w", encoding="utf-8")
            fcntl.flock(self._fh, fcntl.LOCK_EX | fcntl.LOCK_NB)  # held for this process's life
        except OSError as exc:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
            log.warning("cannot take claims in %s (%s): generating without them", self.dir, exc.strerror or exc)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._fh is not None:
            with self._lock():
                with contextlib.suppress(FileNotFoundError):
                    self.path.unlink()
                self._fh.close()
                self._fh = None

    @contextlib.contextmanager
    def _lock(self) -> Iterator[None]:
        with open(self.dir / "lock", "a", encoding="utf-8") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(fh, fcntl.LOCK_UN)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """The claims lock (a no-op without claims): look at the cache and claim within it."""
        if self._fh is None:
            yield
            return
        with self._lock():
            yield

    def others(self) -> set[str]:
        """Keys the other live generations claim (call under `exclusive`); dead ones' claim files are removed."""
        keys: set[str] = set()
        if self._fh is None:
            return keys
        for path in self.dir.glob(f"*{SUFFIX}"):
            if path == self.path:
                continue
            try:
                fh = open(path, encoding="utf-8")
            except FileNotFoundError:
                continue
            with fh:
                try:
                    fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    keys.update(line.strip() for line in fh if line.strip())  # its owner lives
                    continue
                log.info("removing the claims of a generation that stopped: %s", path.name)
                with contextlib.suppress(FileNotFoundError):
                    path.unlink()
        return keys

    def claim(self, keys: list[str]) -> None:
        """Replace this process's claimed keys (call under `exclusive`)."""
        if self._fh is None:
            return
        self._fh.seek(0)
        self._fh.truncate()
        self._fh.write("".join(f"{k}\n" for k in keys))
        self._fh.flush()

    def release(self) -> None:
        """Claim nothing (the chunk's answers are in the cache)."""
        with self.exclusive():
            self.claim([])


def wait(seconds: float) -> None:
    time.sleep(seconds)
