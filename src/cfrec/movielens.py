"""Facts about the MovieLens 1M release, and the error raised about its files."""

from __future__ import annotations

from pathlib import Path

DEFAULT_DATA_DIR = Path("data/ml-1m")
DATA_URL = "https://files.grouplens.org/datasets/movielens/ml-1m.zip"

# md5 of the files in GroupLens' ml-1m.zip.
# NOTE: only the ML-1M layout is read. ML-10M has half-star ratings and no users.dat,
# and ML-25M/32M ship CSV files, so each needs its own file layout and checksums here.
CHECKSUMS: dict[str, str] = {
    "ratings.dat": "a89aa3591bc97d6d4e0c89459ff39362",
    "movies.dat": "ef9fd9ff8d1b33faf73e2122c371e910",
    "users.dat": "681c0711d0d4548cd3d4718a49c2dcd8",
}
DATASET_FILES = ("ratings.dat", "movies.dat", "users.dat")
ARCHIVE_FOLDER = "ml-1m"
# Copied from the archive when present, because it contains the licence.
ARCHIVE_README = "README"

DATA_DIR_ENV = "CF_DATA_DIR"
DATA_URL_ENV = "CF_DATA_URL"


class DataError(RuntimeError):
    """Raised when the data cannot be downloaded, fails its checksum or is malformed.

    The message is one paragraph that names the file or URL and the next step to take.
    """
