"""The assignment's datasets, fetched from their public locations into the cache, for users online.

    python -m tritonlm.corpora.downloads tinystories         # both splits (train ~2.2 GB, valid ~22 MB)
    python -m tritonlm.corpora.downloads owt --split valid   # one split
    python -m train.leaderboard --train-data tinystories

``tinystories`` is the TinyStories V2 (GPT-4) train/valid text of ``roneneldan/TinyStories``, and
``owt`` the OpenWebText sample of ``stanford-cs336/owt-sample`` (gzipped text), both on the
Hugging Face hub. A download

* shows its progress, and resumes where it stopped (an HTTP range request for the bytes still
  missing, appended to ``NAME.part``);
* is checked: its size against the server's ``Content-Length``, and its SHA-256 against the one
  the hub publishes for large files (the ``X-Linked-ETag`` header) or pinned here; a mismatch
  deletes the partial file and says so;
* appears atomically: the text is renamed into place only once complete and checked (a gzipped
  file is decompressed atomically too), so nothing half-written is ever used;
* offline, fails in one line that names the URL and how to place the file by hand.

``$TRITONLM_HUB`` replaces the hub's address (a mirror; the tests use a server on the loopback).
``python -m util.downloads``, this command's old home, still runs it.
"""

from __future__ import annotations

import argparse
import gzip
import http.client
import os
import re
import shutil
import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tqdm import tqdm

from tritonlm.util.atomic import atomic_path
from tritonlm.util.cli import UserError, cli_main

from .shared import cache_dir, file_sha256

HUB = "https://huggingface.co/datasets"  # or a mirror: $TRITONLM_HUB
BLOCK = 1 << 20


def hub_url() -> str:
    return os.environ.get("TRITONLM_HUB", HUB).rstrip("/")


@dataclass(frozen=True)
class RemoteFile:
    """One file of a dataset: its path on the hub, its name in the cache, and (when pinned) its
    SHA-256; ``gzipped`` files are decompressed to ``text_name``."""

    path: str
    name: str
    sha256: str | None = None
    gzipped: bool = False

    @property
    def url(self) -> str:
        return f"{hub_url()}/{self.path}"

    @property
    def text_name(self) -> str:
        return self.name.removesuffix(".gz") if self.gzipped else self.name


DATASETS: dict[str, dict[str, RemoteFile]] = {
    "tinystories": {
        "train": RemoteFile("roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-train.txt",
                            "TinyStoriesV2-GPT4-train.txt"),
        "valid": RemoteFile("roneneldan/TinyStories/resolve/main/TinyStoriesV2-GPT4-valid.txt",
                            "TinyStoriesV2-GPT4-valid.txt"),
    },
    "owt": {
        "train": RemoteFile("stanford-cs336/owt-sample/resolve/main/owt_train.txt.gz", "owt_train.txt.gz",
                            gzipped=True),
        "valid": RemoteFile("stanford-cs336/owt-sample/resolve/main/owt_valid.txt.gz", "owt_valid.txt.gz",
                            gzipped=True),
    },
}


class DownloadError(OSError, UserError):
    """A download that could not be made or checked; the message says what to do."""


def downloads_dir() -> Path:
    path = cache_dir() / "downloads"
    path.mkdir(parents=True, exist_ok=True)
    return path


def dataset_text(dataset: str, split: str, progress: bool = True) -> Path:
    """The text file of ``dataset``'s ``split`` in the cache, downloaded (and decompressed) if needed."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if split not in DATASETS[dataset]:
        raise ValueError(f"{dataset} has no split {split!r}; choose one of {', '.join(DATASETS[dataset])}")
    remote = DATASETS[dataset][split]
    text = downloads_dir() / remote.text_name
    if text.is_file():
        return text
    archive = fetch(remote, downloads_dir(), progress)
    if remote.gzipped:
        with atomic_path(text) as tmp, gzip.open(archive, "rb") as src, open(tmp, "wb") as dst:
            shutil.copyfileobj(src, dst, BLOCK)
        archive.unlink()
    return text


def fetch(remote: RemoteFile, folder: Path, progress: bool = True, timeout: float = 60.0) -> Path:
    """Download ``remote`` into ``folder`` (resuming ``NAME.part``), check it, and rename it into
    place; returns its path. The file is reused when it is already there."""
    target = folder / remote.name
    if target.is_file():
        return target
    partial = folder / f"{remote.name}.part"
    start = partial.stat().st_size if partial.is_file() else 0
    published_sha = _published_sha256(remote, target, timeout)
    request = urllib.request.Request(remote.url, headers={"Range": f"bytes={start}-"} if start else {})
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and start:  # the range starts at the end: the partial file may be complete
            return _finish(remote, partial, target, expected_size=start, expected_sha=remote.sha256)
        raise _unreachable(remote, target, f"HTTP {e.code} {e.reason}") from e
    except (urllib.error.URLError, OSError) as e:
        raise _unreachable(remote, target, str(getattr(e, "reason", e))) from e
    with response:
        resumed = start and response.status == 206
        size = _expected_size(response, start if resumed else 0)
        sha = remote.sha256 or published_sha
        with open(partial, "ab" if resumed else "wb") as out, tqdm(
            total=size, initial=start if resumed else 0, unit="B", unit_scale=True, disable=not progress,
            desc=f"downloading {remote.name}",
        ) as bar:
            try:
                while block := response.read(BLOCK):
                    out.write(block)
                    bar.update(len(block))
            except (OSError, urllib.error.URLError, http.client.HTTPException) as e:
                raise DownloadError(f"the download of {remote.url} stopped at {out.tell():,} bytes ({e}); run the "
                                    f"same command again to resume it") from e
    return _finish(remote, partial, target, size, sha)


def _finish(remote: RemoteFile, partial: Path, target: Path, expected_size: int | None,
            expected_sha: str | None) -> Path:
    """Check the complete partial file and rename it into place (or delete it if it is wrong)."""
    size = partial.stat().st_size
    if expected_size is not None and size != expected_size:
        raise DownloadError(f"{remote.url} ended after {size:,} of {expected_size:,} bytes; run the same command "
                            "again to resume it")
    if expected_sha is not None:
        actual = file_sha256(partial)
        if actual != expected_sha:
            partial.unlink()
            raise DownloadError(f"{remote.url} downloaded with SHA-256 {actual}, not the published {expected_sha}: "
                                "the partial file was deleted; run the same command again")
    os.replace(partial, target)
    return target


def _expected_size(response, offset: int) -> int | None:
    length = response.headers.get("Content-Length")
    return offset + int(length) if length and length.isdigit() else None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # keep the hub's own response: its headers name the file's checksum


def _published_sha256(remote: RemoteFile, target: Path, timeout: float) -> str | None:
    """The SHA-256 the Hugging Face hub publishes for large (LFS) files (the ``X-Linked-ETag`` of
    the response before its redirect to the storage), or None when the server sends none."""
    request = urllib.request.Request(remote.url, method="HEAD")
    try:
        response = urllib.request.build_opener(_NoRedirect).open(request, timeout=timeout)
        headers = response.headers
        response.close()
    except urllib.error.HTTPError as e:  # a redirect (3xx) arrives here, with the headers wanted
        headers = e.headers
    except (urllib.error.URLError, OSError) as e:
        raise _unreachable(remote, target, str(getattr(e, "reason", e))) from e
    tag = (headers.get("X-Linked-ETag") or "").strip('"').lower() if headers else ""
    return tag if re.fullmatch(r"[0-9a-f]{64}", tag) else None


def _unreachable(remote: RemoteFile, target: Path, reason: str) -> DownloadError:
    return DownloadError(f"cannot download {remote.url} ({reason}); offline, download it elsewhere and place it "
                         f"at {target}" + (" (gzipped, as published)" if remote.gzipped else ""))


@cli_main
def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tritonlm.corpora.downloads", description=__doc__.split("\n\n")[0])
    parser.add_argument("dataset", choices=sorted(DATASETS))
    parser.add_argument("--split", choices=("train", "valid", "both"), default="both")
    args = parser.parse_args(argv)
    for split in ("train", "valid") if args.split == "both" else (args.split,):
        path = dataset_text(args.dataset, split)
        print(f"{args.dataset} {split}: {path} ({path.stat().st_size / 1e6:,.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
