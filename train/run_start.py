"""Starting a run in its folder: check the folder, lock it for this job, write ``config.json``.

Checking touches nothing, so a start that fails on a bad input leaves no trace; the folder is
created and locked only once every input is known to be good.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import filelock

from tritonlm.util.atomic import atomic_path, remove_stale_temporaries, write_json_atomic
from tritonlm.util.cli import UserError
from tritonlm.util.config_file import write_config_file
from tritonlm.util.runinfo import run_metadata

from .config import TrainConfig
from .data import TokenData
from .distributed import DistInfo
from .run_folder import RunFolder, load_tokenizer


class RunFolderError(RuntimeError, UserError):
    """An output folder that would be overwritten, or a resume without a run to resume."""


def check_run_dir(cfg: TrainConfig) -> Path:
    """The run folder ``out_dir``, checked but not touched: a folder (not a file), with a
    checkpoint to ``--resume`` from, and not a finished run unless ``--overwrite``."""
    run_dir = Path(cfg.out_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise RunFolderError(f"--out_dir {run_dir} is a file, not a folder; choose another --out_dir")
    checkpoint = RunFolder(run_dir).checkpoint
    if cfg.resume and not checkpoint.exists():
        raise RunFolderError(f"--resume: no checkpoint at {checkpoint}; start without --resume")
    if not cfg.resume and checkpoint.exists() and not cfg.overwrite:
        raise RunFolderError(
            f"{run_dir} already holds a run ({checkpoint.name}); continue it with --resume, "
            "replace it with --overwrite, or choose another --out_dir"
        )
    return run_dir


class RunLock:
    """Exclusive use of a run folder by one job: a ``filelock`` lock on ``RUN/.lock`` (``flock`` on
    Linux and macOS, ``LockFileEx`` on Windows), released when the job ends or by the system when
    its process dies. The lock file stays (removing it while locked would let a second job lock a
    new file of the same name); the holder's pid is in ``RUN/.lock.pid`` while it holds the lock."""

    def __init__(self, run_dir: Path):
        self.path, self.pid_path = run_dir / ".lock", run_dir / ".lock.pid"
        self._lock = filelock.FileLock(self.path)
        try:
            self._lock.acquire(timeout=0)
        except filelock.Timeout:
            holder = self.pid_path.read_text().strip() if self.pid_path.exists() else "unknown"
            raise RunFolderError(f"{run_dir} is in use by another job (pid {holder}); wait for it to end, or choose "
                                 "another --out_dir") from None
        self.pid_path.write_text(str(os.getpid()))

    def release(self) -> None:
        if self._lock.is_locked:
            self.pid_path.unlink(missing_ok=True)  # before unlocking: only the holder writes it
            self._lock.release()


def start_run_dir(run_dir: Path, info: DistInfo) -> RunLock | None:
    """Create the run folder and lock it for this job (on the main rank), and clean up what an
    earlier job's crash left there; called once the inputs are known to be good."""
    if not info.is_main:
        return None
    run_dir.mkdir(parents=True, exist_ok=True)
    lock = RunLock(run_dir)
    remove_stale_temporaries(run_dir)
    return lock


def find_run_tokenizer(cfg: TrainConfig, train_data: TokenData) -> Path | None:
    """The tokenizer folder the run will record: ``cfg.tokenizer``, else the folder named in the
    training file's header. An explicit tokenizer that did not make the data is an error; a
    recorded folder that is gone or changed is a note (the run trains, and ``generate`` will ask
    for ``--tokenizer``)."""
    record = train_data.tokenizer or {}
    if cfg.tokenizer:
        tokenizer = load_tokenizer(cfg.tokenizer)
        made_by = record.get("sha256")
        if made_by and tokenizer.fingerprint != made_by:
            raise RunFolderError(f"--tokenizer {cfg.tokenizer} did not make {train_data.path} (its header names "
                                 f"tokenizer {made_by[:12]}..., at {record.get('path')}); pass the tokenizer that "
                                 "encoded it, or encode the text again with this one")
        return Path(cfg.tokenizer)
    path = record.get("path")
    if not path:
        return None
    try:
        same = Path(path).is_dir() and load_tokenizer(path).fingerprint == record.get("sha256")
    except (OSError, ValueError):
        same = False
    if not same:
        print(f"note: {train_data.path} was made by the tokenizer in {path}, which is gone or has changed since; "
              "the run folder will hold no tokenizer (pass --tokenizer DIR to record one)", file=sys.stderr)
        return None
    return Path(path)


def record_tokenizer(tokenizer_dir: Path | None, run_dir: Path, info: DistInfo) -> None:
    """Copy the run's tokenizer into ``RUN/tokenizer`` (on the main rank; see ``copy_tokenizer``)."""
    if info.is_main and tokenizer_dir is not None:
        copy_tokenizer(tokenizer_dir, run_dir)


def copy_tokenizer(tokenizer_dir: Path, run_dir: Path) -> Path:
    """``RUN/tokenizer``, copied (atomically) from ``tokenizer_dir`` unless it is there already (a
    resume keeps it), so that the folder stands alone: ``generate`` and every later step find it."""
    target = RunFolder(run_dir).tokenizer
    if not (target / "vocab.json").exists():
        with atomic_path(target) as tmp:
            shutil.copytree(tokenizer_dir, tmp)
    return target


def write_run_config(cfg: TrainConfig, run_dir: Path, info: DistInfo) -> None:
    """``config.json``: the configuration and metadata of the run, once it has started."""
    if info.is_main:
        metadata = run_metadata()
        write_json_atomic(RunFolder(run_dir).config, {"config": cfg.to_dict(), "metadata": metadata})
        write_config_file(cfg, RunFolder(run_dir).config_toml,
                          f"The settings of the run in {run_dir} (git {metadata.get('git_sha')}).\n"
                          "Repeat it with: python -m train.train --config THIS_FILE --out_dir=ANOTHER_FOLDER")
