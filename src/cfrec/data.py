"""Download and verify the MovieLens 1M files, and load them through :mod:`cfrec.parsing`.

The release is a zip archive with ``ratings.dat``, ``movies.dat``, ``users.dat`` and a
``README`` under ``ml-1m/``. Each ``.dat`` line contains fields separated by ``::``:

- ratings.dat: ``UserID::MovieID::Rating::Timestamp``
- movies.dat: ``MovieID::Title::Genres`` in latin-1, where titles may contain ":" but never "::"
- users.dat: ``UserID::Gender::Age::Occupation::Zip-code``

:func:`ensure_dataset` downloads the archive when files are missing and checks the
files against the md5 values of the official release: downloaded files always, files
already present unless ``verify=False``.

Parsing, and the rules for malformed rows, are in :mod:`cfrec.parsing`; the loaders
are re-exported here.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.request
import zipfile
import zlib
from pathlib import Path

from tqdm.auto import tqdm

from .movielens import (
    ARCHIVE_FOLDER,
    ARCHIVE_README,
    CHECKSUMS,
    DATA_DIR_ENV,
    DATA_URL,
    DATA_URL_ENV,
    DATASET_FILES,
    DEFAULT_DATA_DIR,
    DataError,
)
from .parsing import load_movies, load_ratings, load_users

__all__ = [
    "CHECKSUMS", "DATA_URL", "DEFAULT_DATA_DIR", "DataError", "ensure_dataset", "file_md5",
    "load_movies", "load_ratings", "load_users", "resolve_data_dir",
]

logger = logging.getLogger(__name__)

# Seconds that a download may wait for the server to send data before it fails.
DOWNLOAD_TIMEOUT_S = 60
_CHUNK_BYTES = 1 << 20


def resolve_data_dir(data_dir: str | os.PathLike | None = None) -> Path:
    """Return ``data_dir``, else ``$CF_DATA_DIR``, else ``data/ml-1m``."""
    if data_dir is not None:
        return Path(data_dir).expanduser()
    return Path(os.environ.get(DATA_DIR_ENV) or DEFAULT_DATA_DIR).expanduser()


def file_md5(path: str | os.PathLike) -> str:
    """Return the hex md5 digest of a file, read in 1 MiB chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as file:
        while chunk := file.read(_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


# --- download and verification ------------------------------------------------


def ensure_dataset(
    data_dir: str | os.PathLike,
    url: str | None = None,
    verify: bool = True,
    progress: bool = True,
) -> Path:
    """Make sure ``data_dir`` contains the three MovieLens 1M files, downloading them if needed.

    Files that are present are checked against :data:`CHECKSUMS` when ``verify`` is
    true. When any of the three files is missing, the archive is downloaded, the
    missing files (and ``README`` if absent) are extracted, checked against
    :data:`CHECKSUMS` regardless of ``verify``, and moved into ``data_dir``. Files that
    are already present are never overwritten. The archive and the extracted files
    live in a temporary folder next to ``data_dir``, which is removed on success, on
    error and on ``KeyboardInterrupt``, so a failed download leaves nothing behind.

    Parameters
    ----------
    data_dir : path
        Folder that contains, or will contain, ``ratings.dat``, ``movies.dat`` and ``users.dat``.
    url : str, optional
        Where to download ``ml-1m.zip`` from, ``file://`` URLs included. Defaults to
        ``$CF_DATA_URL``, else :data:`DATA_URL`.
    verify : bool
        Check the md5 of files that are already present.
    progress : bool
        Show a tqdm progress bar during the download.

    Returns
    -------
    Path
        ``data_dir``.

    Raises
    ------
    DataError
        If a present file fails its checksum, or the download, the archive or a
        downloaded file's checksum is invalid. The message names the URL and
        ``data_dir`` and explains how to place the files by hand.
    """
    data_dir = Path(data_dir)
    present = [name for name in DATASET_FILES if (data_dir / name).is_file()]
    missing = [name for name in DATASET_FILES if name not in present]

    if verify:
        _verify_present_files(data_dir, present)
    if not missing:
        return data_dir

    url = url or os.environ.get(DATA_URL_ENV) or DATA_URL
    if present:
        logger.warning(
            "%s contains %s but not %s, so the missing files will be downloaded",
            data_dir, ", ".join(present), ", ".join(missing),
        )
    _fetch_files(url, data_dir, missing, progress)
    return data_dir


def _verify_present_files(data_dir: Path, names: list[str]) -> None:
    for name in names:
        path = data_dir / name
        expected = CHECKSUMS[name]
        try:
            actual = file_md5(path)
        except OSError as error:
            raise DataError(f"cannot read {path} to check its md5: {error}") from error
        if actual != expected:
            raise DataError(
                f"Checksum mismatch for {path}: expected md5 {expected}, found {actual}. "
                f"The file is corrupt or comes from another release than MovieLens 1M. "
                f"Delete it so that the next run downloads a fresh copy, or replace it with "
                f"{name} from ml-1m.zip ({DATA_URL})."
            )
        logger.debug("%s matches md5 %s", path, expected)


class _FetchError(Exception):
    """Failure of a download step, with the reason alone as its message and no advice."""


def _fetch_files(url: str, data_dir: Path, names: list[str], progress: bool) -> None:
    """Download the archive from ``url`` and install the dataset files ``names`` into ``data_dir``."""
    started = time.perf_counter()
    created_dirs = _missing_dirs(data_dir)
    try:
        data_dir.parent.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix=f".{data_dir.name}-download-", dir=data_dir.parent))
    except OSError as error:
        _remove_empty_dirs(created_dirs)
        raise DataError(
            f"cannot create a temporary folder in {data_dir.parent} for the download: {error}. "
            f"{_manual_setup_hint(data_dir)}"
        ) from error

    succeeded = False
    try:
        logger.info("downloading MovieLens 1M from %s into %s", url, data_dir)
        archive = staging / "ml-1m.zip"
        _download(url, archive, progress)

        extras = [] if (data_dir / ARCHIVE_README).exists() else [ARCHIVE_README]
        extracted = _extract(archive, names, extras, staging)
        _verify_downloaded_files(staging, names)
        _install(staging, extracted, data_dir)
        succeeded = True
    except _FetchError as error:
        verb = "is" if len(names) == 1 else "are"
        raise DataError(
            f"{', '.join(names)} {verb} missing from {data_dir} and could not be downloaded from "
            f"{url}: {error}. Nothing was written to {data_dir}. {_manual_setup_hint(data_dir)}"
        ) from error
    finally:
        shutil.rmtree(staging, ignore_errors=True)
        if not succeeded:
            _remove_empty_dirs(created_dirs)

    logger.info(
        "installed %s into %s, md5 verified (%.1f s)",
        ", ".join(extracted), data_dir, time.perf_counter() - started,
    )


def _manual_setup_hint(data_dir: Path) -> str:
    return (
        f"To place the files by hand, download ml-1m.zip from {DATA_URL} and unzip it so that "
        f"{data_dir / 'ratings.dat'} exists next to movies.dat and users.dat, or set "
        f"{DATA_DIR_ENV} to a folder that already contains these three files."
    )


def _missing_dirs(path: Path) -> list[Path]:
    """Return ``path`` and its ancestors that do not exist yet, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _remove_empty_dirs(paths: list[Path]) -> None:
    for path in paths:
        try:
            path.rmdir()
        except FileNotFoundError:
            continue
        except OSError:
            # Not empty, so its ancestors are not empty either.
            return


def _download(url: str, destination: Path, progress: bool) -> None:
    received = 0
    try:
        with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
            expected = _content_length(response)
            with (
                open(destination, "wb") as file,
                tqdm(
                    total=expected, unit="B", unit_scale=True, unit_divisor=1024,
                    desc="ml-1m.zip", leave=False, disable=not progress,
                ) as bar,
            ):
                while chunk := response.read(_CHUNK_BYTES):
                    file.write(chunk)
                    received += len(chunk)
                    bar.update(len(chunk))
    except urllib.error.HTTPError as error:
        raise _FetchError(f"the server responded with HTTP {error.code} {error.reason}") from error
    except urllib.error.URLError as error:
        raise _FetchError(f"the download failed ({error.reason})") from error
    except (http.client.HTTPException, OSError, ValueError) as error:
        raise _FetchError(f"the download failed ({error})") from error

    if expected is not None and received != expected:
        raise _FetchError(f"the download stopped after {received:,} of {expected:,} bytes")
    logger.debug("downloaded %d bytes from %s", received, url)


def _content_length(response) -> int | None:
    try:
        return int(response.headers["Content-Length"])
    except (KeyError, TypeError, ValueError):
        return None


def _extract(archive: Path, names: list[str], extras: list[str], directory: Path) -> list[str]:
    """Extract ``ml-1m/NAME`` for each of ``names`` and, when present, ``extras`` into ``directory``.

    Returns the names extracted. Members are copied one by one rather than with
    ``extractall`` so that no path from the archive decides where a file goes.
    """
    extracted = []
    try:
        with zipfile.ZipFile(archive) as zip_file:
            members = set(zip_file.namelist())
            for name in [*names, *extras]:
                member = f"{ARCHIVE_FOLDER}/{name}"
                if member not in members:
                    if name in extras:
                        continue
                    raise _FetchError(f"the archive contains no {member}")
                with zip_file.open(member) as source, open(directory / name, "wb") as target:
                    shutil.copyfileobj(source, target, _CHUNK_BYTES)
                extracted.append(name)
    except (zipfile.BadZipFile, EOFError, zlib.error) as error:
        raise _FetchError(f"the downloaded file is not a valid zip archive ({error})") from error
    except OSError as error:
        raise _FetchError(f"extracting the archive failed ({error})") from error
    return extracted


def _verify_downloaded_files(directory: Path, names: list[str]) -> None:
    for name in names:
        expected = CHECKSUMS[name]
        actual = file_md5(directory / name)
        if actual != expected:
            raise _FetchError(
                f"{ARCHIVE_FOLDER}/{name} in the archive has md5 {actual}, expected {expected}, "
                f"so the archive is corrupt or is not the MovieLens 1M release"
            )


def _install(staging: Path, names: list[str], data_dir: Path) -> None:
    """Move the files into ``data_dir``, removing the ones already moved if a move fails.

    ``staging`` and ``data_dir`` share a parent folder, so each ``os.replace`` is a
    rename on one file system and a file is either absent or complete.
    """
    installed: list[Path] = []
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        for name in names:
            os.replace(staging / name, data_dir / name)
            installed.append(data_dir / name)
    except BaseException as error:
        for path in installed:
            path.unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise _FetchError(f"moving the files into place failed ({error})") from error
        raise
