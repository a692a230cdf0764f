"""Parsing, validation, download and checksum checks of cfrec.data.

Every test writes its own small files in tmp_path. The tests marked with
``needs_ml1m`` run on the real MovieLens 1M files and skip when they are absent.
"""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from pathlib import Path

import numpy as np
import pytest
from conftest import real_data_dir

from cfrec import data, parsing

RATINGS = b"1::10::5::978300760\n1::20::3::978302109\n2::10::4::978301968\n"
MOVIES = (
    "10::Misérables, Les (1995)::Drama|Musical\n"
    "20::Star Wars: Episode IV - A New Hope (1977)::Action|Sci-Fi\n"
).encode("latin-1")
USERS = b"1::F::1::10::48067\n2::M::56::16::70072-1234\n"
README = b"Summary of the fixture data set.\n"
FIXTURE_FILES = {"ratings.dat": RATINGS, "movies.dat": MOVIES, "users.dat": USERS}


@pytest.fixture(autouse=True)
def no_data_url_env(monkeypatch):
    monkeypatch.delenv(data.DATA_URL_ENV, raising=False)


@pytest.fixture
def fixture_checksums(monkeypatch):
    """Set CHECKSUMS to the md5 values of the fixture files."""
    checksums = {name: hashlib.md5(content).hexdigest() for name, content in FIXTURE_FILES.items()}
    monkeypatch.setattr(data, "CHECKSUMS", checksums)
    return checksums


def write_file(folder: Path, name: str, content: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content)
    return path


def write_archive(path: Path, files: dict[str, bytes], folder: str = "ml-1m") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, content in files.items():
            archive.writestr(f"{folder}/{name}", content)
    return path


def fixture_archive(path: Path) -> Path:
    return write_archive(path, {**FIXTURE_FILES, "README": README})


def load_ratings_error(tmp_path: Path, content: bytes) -> str:
    path = write_file(tmp_path, "ratings.dat", content)
    with pytest.raises(data.DataError) as caught:
        data.load_ratings(path)
    return str(caught.value)


def assert_no_leftovers(folder: Path, expected: tuple[str, ...] = ()) -> None:
    """Check that ``folder`` contains exactly ``expected``, so no temporary file remains."""
    assert {path.name for path in folder.iterdir()} == set(expected)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):
        pass


@pytest.fixture
def http_mirror(tmp_path):
    """Serve tmp_path/mirror on 127.0.0.1 at a free port and yield the folder and its base URL."""
    folder = tmp_path / "mirror"
    folder.mkdir()
    handler = functools.partial(QuietHandler, directory=str(folder))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield folder, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


# --- loading valid files ----------------------------------------------------------


def test_load_ratings_dtypes_and_values(tmp_path):
    ratings = data.load_ratings(write_file(tmp_path, "ratings.dat", RATINGS))

    assert list(ratings.columns) == ["user_id", "movie_id", "rating", "timestamp"]
    assert ratings["user_id"].dtype == np.int32
    assert ratings["movie_id"].dtype == np.int32
    assert ratings["rating"].dtype == np.int8
    assert ratings["timestamp"].dtype == np.int64
    assert ratings.values.tolist() == [
        [1, 10, 5, 978300760],
        [1, 20, 3, 978302109],
        [2, 10, 4, 978301968],
    ]


def test_load_ratings_accepts_trailing_blank_lines(tmp_path):
    ratings = data.load_ratings(write_file(tmp_path, "ratings.dat", RATINGS + b"\n\n"))

    assert len(ratings) == 3


def test_load_ratings_accepts_missing_final_newline(tmp_path):
    ratings = data.load_ratings(write_file(tmp_path, "ratings.dat", RATINGS.rstrip(b"\n")))

    assert ratings["timestamp"].tolist() == [978300760, 978302109, 978301968]


def test_load_ratings_accepts_crlf(tmp_path):
    ratings = data.load_ratings(write_file(tmp_path, "ratings.dat", RATINGS.replace(b"\n", b"\r\n")))

    assert ratings["timestamp"].tolist() == [978300760, 978302109, 978301968]


def test_fast_and_line_parsers_agree(tmp_path):
    rng = np.random.default_rng(3)
    pairs = rng.choice(500 * 400, size=5000, replace=False)
    lines = [
        f"{pair // 400 + 1}::{pair % 400 + 1}::{rng.integers(1, 6)}::{978300000 + i}"
        for i, pair in enumerate(pairs)
    ]
    content = ("\n".join(lines) + "\n").encode()
    path = write_file(tmp_path, "ratings.dat", content)

    loaded = data.load_ratings(path)
    scanned = parsing._parse_lines(content, parsing._RATINGS, path)

    assert len(loaded) == 5000
    assert loaded.dtypes.to_dict() == scanned.dtypes.to_dict()
    assert loaded.equals(scanned)


def test_load_movies_decodes_latin1(tmp_path):
    movies = data.load_movies(write_file(tmp_path, "movies.dat", MOVIES))

    assert list(movies.columns) == ["movie_id", "title", "genres"]
    assert movies["movie_id"].dtype == np.int32
    assert movies["movie_id"].tolist() == [10, 20]
    assert movies["title"].tolist() == [
        "Misérables, Les (1995)",
        "Star Wars: Episode IV - A New Hope (1977)",
    ]
    assert movies["genres"].tolist() == ["Drama|Musical", "Action|Sci-Fi"]


def test_load_users_dtypes_and_values(tmp_path):
    users = data.load_users(write_file(tmp_path, "users.dat", USERS))

    assert list(users.columns) == ["user_id", "gender", "age", "occupation", "zip_code"]
    assert users["user_id"].dtype == np.int32
    assert users["age"].dtype == np.int8
    assert users["occupation"].dtype == np.int8
    assert users["gender"].tolist() == ["F", "M"]
    assert users["age"].tolist() == [1, 56]
    assert users["occupation"].tolist() == [10, 16]
    assert users["zip_code"].tolist() == ["48067", "70072-1234"]


# --- malformed rows ---------------------------------------------------------------

VALID_ROW = b"1::10::5::978300760\n"


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (b"1::11::3\n", "expected 4 fields separated by '::', found 3"),
        (b"1::11::3::978300760::7\n", "expected 4 fields separated by '::', found 5"),
        (b"1:11::3::978300760\n", "expected 4 fields separated by '::', found 3"),
        (b"x::11::3::978300760\n", "user_id 'x' is not an integer"),
        (b"1::11.0::3::978300760\n", "movie_id '11.0' is not an integer"),
        (b"1::11::4.5::978300760\n", "rating '4.5' is not an integer"),
        (b"1::11:: 3::978300760\n", "rating ' 3' is not an integer"),
        (b"1::11::3::\n", "timestamp '' is not an integer"),
        (b"1::11::3::1e9\n", "timestamp '1e9' is not an integer"),
        (b"1::11::6::978300760\n", "rating 6 is outside 1-5"),
        (b"1::11::0::978300760\n", "rating 0 is outside 1-5"),
        (b"0::11::3::978300760\n", "user_id 0 is below 1"),
        (b"1::0::3::978300760\n", "movie_id 0 is below 1"),
        (b"-4::11::3::978300760\n", "user_id -4 is below 1"),
        (b"1::11::3::-1\n", "timestamp -1 is below 0"),
        (b"1::3000000000::3::978300760\n", "movie_id 3000000000 is above 2147483647"),
        (b"\n", "empty line"),
    ],
)
def test_load_ratings_rejects_malformed_row(tmp_path, bad_row, reason):
    message = load_ratings_error(tmp_path, VALID_ROW + bad_row + b"2::10::4::978301968\n")

    assert f"line 2: {reason}" in message
    assert "1 malformed row" in message
    assert str(tmp_path / "ratings.dat") in message


def test_load_ratings_names_both_duplicate_lines(tmp_path):
    content = VALID_ROW + b"2::10::4::978301968\n1::10::3::978300999\n"

    message = load_ratings_error(tmp_path, content)

    assert "line 3: duplicate (user_id, movie_id) pair (1, 10), first seen on line 1" in message


def test_load_ratings_lists_all_row_reasons(tmp_path):
    message = load_ratings_error(tmp_path, VALID_ROW + b"0::11::9::978300760\n")

    assert "line 2: user_id 0 is below 1 and rating 9 is outside 1-5" in message


def test_load_ratings_lists_first_ten_bad_rows(tmp_path):
    bad_rows = b"".join(b"1::%d::9::978300760\n" % movie_id for movie_id in range(11, 36))

    message = load_ratings_error(tmp_path, VALID_ROW + bad_rows)

    assert "25 malformed rows" in message
    assert "First 10 malformed rows" in message
    assert "line 2: rating 9 is outside 1-5" in message
    assert "line 11: rating 9 is outside 1-5" in message
    assert "line 12:" not in message


def test_load_ratings_finds_line_in_large_file(tmp_path):
    lines = [f"{i // 50 + 1}::{i % 50 + 1}::{i % 5 + 1}::{978300000 + i}" for i in range(20_000)]
    lines[12_344] = "248::45::3"

    message = load_ratings_error(tmp_path, ("\n".join(lines) + "\n").encode())

    assert "line 12345: expected 4 fields separated by '::', found 3" in message
    assert "1 malformed row" in message


def test_load_ratings_rejects_empty_file(tmp_path):
    message = load_ratings_error(tmp_path, b"\n")

    assert "contains no rows" in message


def test_load_ratings_missing_file(tmp_path):
    path = tmp_path / "ml-1m" / "ratings.dat"

    with pytest.raises(data.DataError) as caught:
        data.load_ratings(path)

    assert f"ratings file not found at {path}" in str(caught.value)
    assert "CF_DATA_DIR" in str(caught.value)


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (b"30::Title::With::Separators (1990)::Drama\n", "expected 3 fields separated by '::', found 5"),
        (b"30::Untitled (1990)\n", "expected 3 fields separated by '::', found 2"),
        (b"3O::Typo In Id (1990)::Drama\n", "movie_id '3O' is not an integer"),
        (b"0::Zero (1990)::Drama\n", "movie_id 0 is below 1"),
        (b"10::Remake (2000)::Drama\n", "duplicate movie_id 10, first seen on line 1"),
    ],
)
def test_load_movies_rejects_malformed_row(tmp_path, bad_row, reason):
    path = write_file(tmp_path, "movies.dat", MOVIES + bad_row)

    with pytest.raises(data.DataError) as caught:
        data.load_movies(path)

    assert f"line 3: {reason}" in str(caught.value)


@pytest.mark.parametrize(
    ("bad_row", "reason"),
    [
        (b"3::F::25::4\n", "expected 5 fields separated by '::', found 4"),
        (b"three::F::25::4::12345\n", "user_id 'three' is not an integer"),
        (b"3::F::adult::4::12345\n", "age 'adult' is not an integer"),
        (b"3::F::25::teacher::12345\n", "occupation 'teacher' is not an integer"),
        (b"2::F::25::4::12345\n", "duplicate user_id 2, first seen on line 2"),
    ],
)
def test_load_users_rejects_malformed_row(tmp_path, bad_row, reason):
    path = write_file(tmp_path, "users.dat", USERS + bad_row)

    with pytest.raises(data.DataError) as caught:
        data.load_users(path)

    assert f"line 3: {reason}" in str(caught.value)


# --- data folder and checksums --------------------------------------------------


def test_resolve_data_dir_prefers_argument(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "from-env"))

    assert data.resolve_data_dir(tmp_path / "given") == tmp_path / "given"


def test_resolve_data_dir_reads_env(monkeypatch, tmp_path):
    monkeypatch.setenv(data.DATA_DIR_ENV, str(tmp_path / "from-env"))

    assert data.resolve_data_dir() == tmp_path / "from-env"


def test_resolve_data_dir_default(monkeypatch):
    monkeypatch.delenv(data.DATA_DIR_ENV, raising=False)

    assert data.resolve_data_dir() == Path("data/ml-1m")


def test_file_md5_matches_hashlib(tmp_path):
    content = bytes(range(256)) * 10_000
    path = write_file(tmp_path, "blob.bin", content)

    assert data.file_md5(path) == hashlib.md5(content).hexdigest()


def write_present_files(data_dir: Path) -> None:
    for name, content in FIXTURE_FILES.items():
        write_file(data_dir, name, content)


def test_ensure_dataset_accepts_verified_files(tmp_path, fixture_checksums):
    data_dir = tmp_path / "ml-1m"
    write_present_files(data_dir)
    unreachable = (tmp_path / "absent.zip").as_uri()

    assert data.ensure_dataset(data_dir, url=unreachable, progress=False) == data_dir
    assert_no_leftovers(tmp_path, ("ml-1m",))


def test_ensure_dataset_rejects_checksum_mismatch(tmp_path):
    data_dir = tmp_path / "ml-1m"
    write_present_files(data_dir)

    with pytest.raises(data.DataError) as caught:
        data.ensure_dataset(data_dir, progress=False)

    message = str(caught.value)
    assert f"Checksum mismatch for {data_dir / 'ratings.dat'}" in message
    assert data.CHECKSUMS["ratings.dat"] in message
    assert hashlib.md5(RATINGS).hexdigest() in message


def test_ensure_dataset_skips_checksums_without_verify(tmp_path):
    data_dir = tmp_path / "ml-1m"
    write_present_files(data_dir)

    assert data.ensure_dataset(data_dir, verify=False, progress=False) == data_dir
    assert (data_dir / "ratings.dat").read_bytes() == RATINGS


# --- download -----------------------------------------------------------------


def assert_fixture_installed(data_dir: Path) -> None:
    for name, content in FIXTURE_FILES.items():
        assert (data_dir / name).read_bytes() == content, name
    assert (data_dir / "README").read_bytes() == README


def test_ensure_dataset_downloads_file_url(tmp_path, fixture_checksums):
    archive = fixture_archive(tmp_path / "mirror" / "ml-1m.zip")
    data_dir = tmp_path / "target" / "ml-1m"

    data.ensure_dataset(data_dir, url=archive.as_uri(), progress=False)

    assert_fixture_installed(data_dir)
    assert_no_leftovers(data_dir.parent, ("ml-1m",))
    assert data.load_movies(data_dir / "movies.dat")["title"][0] == "Misérables, Les (1995)"


def test_ensure_dataset_downloads_over_http(tmp_path, fixture_checksums, http_mirror):
    mirror_dir, base_url = http_mirror
    fixture_archive(mirror_dir / "ml-1m.zip")
    data_dir = tmp_path / "target" / "ml-1m"

    data.ensure_dataset(data_dir, url=f"{base_url}/ml-1m.zip", progress=False)

    assert_fixture_installed(data_dir)
    assert_no_leftovers(data_dir.parent, ("ml-1m",))


def test_ensure_dataset_reads_url_from_env(tmp_path, fixture_checksums, monkeypatch):
    archive = fixture_archive(tmp_path / "mirror" / "ml-1m.zip")
    monkeypatch.setenv(data.DATA_URL_ENV, archive.as_uri())
    data_dir = tmp_path / "target" / "ml-1m"

    data.ensure_dataset(data_dir, progress=False)

    assert_fixture_installed(data_dir)


def test_ensure_dataset_downloads_only_missing_files(tmp_path, fixture_checksums):
    archive = fixture_archive(tmp_path / "mirror" / "ml-1m.zip")
    data_dir = tmp_path / "target" / "ml-1m"
    own_ratings = b"1::10::4::978300760\n"
    write_file(data_dir, "ratings.dat", own_ratings)

    data.ensure_dataset(data_dir, url=archive.as_uri(), verify=False, progress=False)

    assert (data_dir / "ratings.dat").read_bytes() == own_ratings
    assert (data_dir / "movies.dat").read_bytes() == MOVIES
    assert (data_dir / "users.dat").read_bytes() == USERS
    assert_no_leftovers(data_dir.parent, ("ml-1m",))


def test_ensure_dataset_verifies_before_download(tmp_path, fixture_checksums):
    archive = fixture_archive(tmp_path / "mirror" / "ml-1m.zip")
    data_dir = tmp_path / "target" / "ml-1m"
    write_file(data_dir, "ratings.dat", b"1::10::4::978300760\n")

    with pytest.raises(data.DataError) as caught:
        data.ensure_dataset(data_dir, url=archive.as_uri(), progress=False)

    assert "Checksum mismatch" in str(caught.value)
    assert_no_leftovers(data_dir, ("ratings.dat",))


def download_error(data_dir: Path, url: str) -> str:
    with pytest.raises(data.DataError) as caught:
        data.ensure_dataset(data_dir, url=url, progress=False)
    message = str(caught.value)
    assert url in message
    assert str(data_dir) in message
    assert "To place the files by hand" in message
    return message


def test_download_rejects_corrupted_zip(tmp_path, fixture_checksums):
    archive = write_file(tmp_path / "mirror", "ml-1m.zip", b"PK\x03\x04 this is not a zip archive")
    (tmp_path / "target").mkdir()
    data_dir = tmp_path / "target" / "ml-1m"

    message = download_error(data_dir, archive.as_uri())

    assert "not a valid zip archive" in message
    assert_no_leftovers(tmp_path / "target")


def test_download_rejects_truncated_zip(tmp_path, fixture_checksums):
    archive = fixture_archive(tmp_path / "mirror" / "ml-1m.zip")
    archive.write_bytes(archive.read_bytes()[:-40])
    (tmp_path / "target").mkdir()
    data_dir = tmp_path / "target" / "ml-1m"

    message = download_error(data_dir, archive.as_uri())

    assert "not a valid zip archive" in message
    assert_no_leftovers(tmp_path / "target")


def test_download_rejects_wrong_checksum(tmp_path):
    archive = fixture_archive(tmp_path / "mirror" / "ml-1m.zip")
    (tmp_path / "target").mkdir()
    data_dir = tmp_path / "target" / "ml-1m"

    message = download_error(data_dir, archive.as_uri())

    assert f"ml-1m/ratings.dat in the archive has md5 {hashlib.md5(RATINGS).hexdigest()}" in message
    assert data.CHECKSUMS["ratings.dat"] in message
    assert_no_leftovers(tmp_path / "target")


def test_download_checks_checksum_without_verify(tmp_path):
    archive = fixture_archive(tmp_path / "mirror" / "ml-1m.zip")
    data_dir = tmp_path / "target" / "ml-1m"

    with pytest.raises(data.DataError):
        data.ensure_dataset(data_dir, url=archive.as_uri(), verify=False, progress=False)

    assert not data_dir.exists()


def test_download_rejects_archive_without_file(tmp_path, fixture_checksums):
    archive = write_archive(tmp_path / "mirror" / "ml-1m.zip", {"ratings.dat": RATINGS, "movies.dat": MOVIES})
    (tmp_path / "target").mkdir()
    data_dir = tmp_path / "target" / "ml-1m"

    message = download_error(data_dir, archive.as_uri())

    assert "the archive contains no ml-1m/users.dat" in message
    assert_no_leftovers(tmp_path / "target")


def test_download_reports_http_404(tmp_path, fixture_checksums, http_mirror):
    _, base_url = http_mirror
    (tmp_path / "target").mkdir()
    data_dir = tmp_path / "target" / "ml-1m"

    message = download_error(data_dir, f"{base_url}/missing/ml-1m.zip")

    assert "HTTP 404" in message
    assert_no_leftovers(tmp_path / "target")


def test_download_reports_missing_file_url(tmp_path, fixture_checksums):
    (tmp_path / "target").mkdir()
    data_dir = tmp_path / "target" / "ml-1m"

    message = download_error(data_dir, (tmp_path / "absent.zip").as_uri())

    assert "No such file or directory" in message
    assert_no_leftovers(tmp_path / "target")


def test_failed_download_removes_created_folders(tmp_path, fixture_checksums):
    data_dir = tmp_path / "new" / "nested" / "ml-1m"

    download_error(data_dir, (tmp_path / "absent.zip").as_uri())

    assert_no_leftovers(tmp_path)


def test_interrupted_download_leaves_nothing(tmp_path, fixture_checksums, monkeypatch):
    archive = fixture_archive(tmp_path / "mirror" / "ml-1m.zip")
    (tmp_path / "target").mkdir()
    data_dir = tmp_path / "target" / "ml-1m"

    def interrupt(path):
        raise KeyboardInterrupt

    # The checksum step runs after the archive is downloaded and extracted.
    monkeypatch.setattr(data, "file_md5", interrupt)
    with pytest.raises(KeyboardInterrupt):
        data.ensure_dataset(data_dir, url=archive.as_uri(), progress=False)

    assert_no_leftovers(tmp_path / "target")


# --- the real MovieLens 1M ------------------------------------------------------

needs_ml1m = pytest.mark.skipif(
    real_data_dir() is None, reason="MovieLens 1M not found in $CF_DATA_DIR or data/ml-1m"
)


@needs_ml1m
def test_real_ratings_counts():
    ratings = data.load_ratings(real_data_dir() / "ratings.dat")

    assert len(ratings) == 1_000_209
    assert ratings["user_id"].nunique() == 6_040
    assert ratings["movie_id"].nunique() == 3_706
    assert ratings["rating"].mean() == pytest.approx(3.5816, abs=1e-4)


@needs_ml1m
def test_real_movies_and_users():
    movies = data.load_movies(real_data_dir() / "movies.dat")
    users = data.load_users(real_data_dir() / "users.dat")

    assert len(movies) == 3_883
    assert "Misérables, Les (1995)" in set(movies["title"])
    assert len(users) == 6_040


@needs_ml1m
def test_real_files_match_checksums():
    data_dir = real_data_dir()

    assert data.ensure_dataset(data_dir, url="file:///nonexistent/ml-1m.zip", progress=False) == data_dir


@needs_ml1m
def test_real_archive_download_verifies(tmp_path):
    source_dir = real_data_dir()
    archive = source_dir.parent / "ml-1m.zip"
    if not archive.is_file():
        # Pack the real files the way the release does, so the download path still runs.
        archive = write_archive(
            tmp_path / "mirror" / "ml-1m.zip",
            {name: (source_dir / name).read_bytes() for name in data.DATASET_FILES},
        )
    data_dir = tmp_path / "target" / "ml-1m"

    data.ensure_dataset(data_dir, url=archive.as_uri(), progress=False)

    for name in data.DATASET_FILES:
        assert data.file_md5(data_dir / name) == data.CHECKSUMS[name]
    assert_no_leftovers(data_dir.parent, ("ml-1m",))
