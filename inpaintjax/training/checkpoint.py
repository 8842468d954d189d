"""Checkpoints of a training run: the orbax checkpoints (inpaintjax.checkpoints, shared with
inference) and the workdir lock.

The workdir lock (`WorkdirLock`, file `<workdir>/lock`): process 0 of a run holds an exclusive
`flock` on it and writes its pid and host there; a second run on the same workdir stops at once
with WorkdirLockedError naming the holder. The kernel drops the lock when its process dies, so the
lock of a killed run is taken over by the next one, with a message naming the dead holder (on a
network filesystem this relies on its support for `flock`).
"""

from __future__ import annotations

import json
import os
import socket
import time

from inpaintjax.checkpoints import (CONFIG_FILE, DIGESTS_KEY, Checkpointer,  # noqa: F401
                                    CheckpointSaveError, CorruptCheckpointError, abstract_state,
                                    array_digests, check_digests, checkpoint_dir,
                                    load_for_inference, with_sharding)

LOCK_FILE = "lock"


class WorkdirLockedError(RuntimeError):
    """Another live run holds the workdir's lock."""


class WorkdirLock:
    """Exclusive lock of a workdir for one run (module docstring). `acquire()` raises
    WorkdirLockedError naming the live holder's pid and host; `release()` gives it up."""

    def __init__(self, workdir: str):
        self.path = os.path.join(os.path.abspath(workdir), LOCK_FILE)
        self._fd: int | None = None

    def _read(self, fd: int) -> dict:
        os.lseek(fd, 0, os.SEEK_SET)
        text = os.read(fd, 4096).decode("utf-8", "replace").strip()
        try:
            return json.loads(text) if text else {}
        except json.JSONDecodeError:
            return {"raw": text}

    def acquire(self) -> str | None:
        """Take the lock; returns a message when a dead run's lock was taken over, else None."""
        import fcntl
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = self._read(fd)
            os.close(fd)
            raise WorkdirLockedError(
                f"workdir {os.path.dirname(self.path)} is in use by another run: pid "
                f"{holder.get('pid', '?')} on host {holder.get('host', '?')} (started "
                f"{holder.get('started', '?')}) holds {self.path}; stop that run or use another "
                f"workdir") from None
        previous = self._read(fd)
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "started": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(me) + "\n").encode())
        os.fsync(fd)
        self._fd = fd
        if previous:
            return (f"took over the workdir lock of pid {previous.get('pid', '?')} on host "
                    f"{previous.get('host', '?')} (started {previous.get('started', '?')}): that "
                    f"run ended without releasing it")
        return None

    def release(self) -> None:
        if self._fd is None:
            return
        import fcntl
        try:
            os.ftruncate(self._fd, 0)  # empty: the next run finds a clean hand-over
        finally:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
