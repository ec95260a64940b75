"""Hostile import files: every error names file, line and column, and nothing is written."""

from __future__ import annotations

import csv
import sys
from datetime import date, timedelta
from pathlib import Path

import pytest

# The data tests' hand-made Instacart directory (tests/data/test_instacart.py).
sys.path.insert(0, str(Path(__file__).parents[1] / "data"))
from test_instacart import AS_OF, BASE, PRIOR, snapshot  # noqa: E402

from omnix_recs import cli  # noqa: E402
from omnix_recs.data.instacart import import_instacart  # noqa: E402
from omnix_recs.errors import InvalidArgumentError  # noqa: E402
from omnix_recs.store.sqlite import SqliteStore  # noqa: E402


@pytest.fixture
def store(tmp_path: Path):
    opened = SqliteStore(tmp_path / "omnix.db")
    yield opened
    opened.close()


def write_bytes(directory: Path, changes: dict[str, bytes]) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in BASE.items():
        (directory / name).write_bytes(changes.get(name, text.encode("utf-8")))
    return directory


LATIN1_PRODUCTS = BASE["products.csv"].replace("Whole Milk", "Crème fraîche").encode("latin-1")
HUGE_FIELD = BASE["products.csv"].replace("Oat Milk", "O" * (csv.field_size_limit() + 10)).encode()
ESCAPE_NAME = BASE["products.csv"].replace("Oat Milk", "\x1b[2JOat Milk").encode()
NUL_NAME = BASE["products.csv"].replace("Whole Milk", "Whole\x00Milk").encode()
LATIN1_LINES = (BASE[PRIOR] + "101,20,2,0\n").encode().replace(b"101,20,2,0", b"101,2\xe9,2,0")


@pytest.mark.parametrize(
    ("changes", "field", "message"),
    [
        (
            {"products.csv": LATIN1_PRODUCTS},
            "products.csv:line 2:product_name",
            "not valid UTF-8 text (byte 0xe8 at character 6); save the file as UTF-8",
        ),
        (
            {"products.csv": HUGE_FIELD},
            "products.csv:line 4",
            f"a field is longer than {csv.field_size_limit()} characters",
        ),
        (
            {"products.csv": ESCAPE_NAME},
            "products.csv:line 4:product_name",
            "must not contain control characters (U+001B at position 0)",
        ),
        (
            {"products.csv": NUL_NAME},
            "products.csv:line 2:product_name",
            "must not contain control characters (U+0000 at position 5)",
        ),
        (
            {PRIOR: LATIN1_LINES},
            f"{PRIOR}:line 6:product_id",
            "not valid UTF-8 text (byte 0xe9 at character 6); save the file as UTF-8",
        ),
    ],
)
def test_unreadable_files_name_file_line_and_column(store, tmp_path, changes, field, message):
    import_instacart(store, write_bytes(tmp_path / "good", {}), as_of=AS_OF)
    before = snapshot(store)
    with pytest.raises(InvalidArgumentError) as info:
        import_instacart(store, write_bytes(tmp_path / "bad", changes), as_of=AS_OF)
    assert (info.value.field, info.value.message) == (field, message)
    assert snapshot(store) == before


def test_reimporting_with_another_as_of_is_refused_and_changes_nothing(store, tmp_path):
    directory = write_bytes(tmp_path / "in", {})
    import_instacart(store, directory, as_of=AS_OF)
    before = snapshot(store)
    later = AS_OF + timedelta(days=9)
    with pytest.raises(InvalidArgumentError) as info:
        import_instacart(store, directory, as_of=later)
    assert info.value.field == "--as-of"
    assert f"imported with --as-of {AS_OF.isoformat()}" in info.value.message
    assert "would add every purchase again 9 days apart" in info.value.message
    assert snapshot(store) == before
    import_instacart(store, directory, as_of=AS_OF)  # the same as-of: idempotent, accepted
    assert snapshot(store) == before


def test_the_cli_reports_a_refused_reimport_in_one_line(tmp_path, capsys):
    directory = write_bytes(tmp_path / "in", {})
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    assert cli.main(["import", "instacart", str(directory), "--store", url, "--as-of", "2026-03-01"]) == 0
    capsys.readouterr()
    assert cli.main(["import", "instacart", str(directory), "--store", url, "--as-of", "2026-03-05"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("omnix import: invalid input: --as-of: the store already holds these orders")
    assert err.count("\n") == 1 and "Traceback" not in err
    assert date(2026, 3, 1).isoformat() in err
