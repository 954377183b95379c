"""StructuredFile: CSV and JSON-lines rows, in order; bad lines skipped and reported."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshops.capture import StructuredFileCapture
from meshops.capture.structured_file import MAX_REPORTS
from meshops.errors import ConfigError

from .conftest import StartCapture, make_config


def test_csv_rows_become_dicts_then_finished(start_capture: StartCapture, tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_text('\ufeffsensor,value\na,1\n\n"b, quoted",2\n', encoding="utf-8")
    capture, rec = start_capture(StructuredFileCapture, URL=str(path), CAP_RESOLUTION=100)
    assert capture.finished.wait(5)
    assert rec.data == [{"sensor": "a", "value": "1"}, {"sensor": "b, quoted", "value": "2"}]
    assert [item.metadata["line"] for item in rec.items] == [2, 4]
    assert rec.items[0].metadata["format"] == "csv"
    assert rec.errors == []


def test_jsonl_rows_keep_their_types(start_capture: StartCapture, tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    rows = [{"t": 1, "ok": True, "tags": ["x"]}, {"t": 2.5, "ok": None}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n", encoding="utf-8")
    capture, rec = start_capture(StructuredFileCapture, URL=str(path), CAP_RESOLUTION=100)
    assert capture.finished.wait(5)
    assert rec.data == rows


def test_malformed_lines_are_skipped_and_reported(
    start_capture: StartCapture, tmp_path: Path
) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_bytes(b'{"n": 1}\n{broken\n[1, 2]\n\xff\xfe\n{"n": 2}\n')
    capture, rec = start_capture(StructuredFileCapture, URL=str(path), CAP_RESOLUTION=100)
    assert capture.finished.wait(5)
    assert rec.data == [{"n": 1}, {"n": 2}]
    assert capture.skipped == 3  # type: ignore[attr-defined]
    assert len(rec.errors) == 3
    for line, words in zip((2, 3, 4), ("invalid JSON", "JSON object", "utf-8"), strict=True):
        assert any(f"{path}:{line}:" in e and words in e for e in rec.errors), rec.errors


def test_csv_rows_with_the_wrong_field_count_are_reported(
    start_capture: StartCapture, tmp_path: Path
) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("a,b\n1,2\n3\n4,5,6\n7,8\n", encoding="utf-8")
    capture, rec = start_capture(StructuredFileCapture, URL=str(path), CAP_RESOLUTION=100)
    assert capture.finished.wait(5)
    assert rec.data == [{"a": "1", "b": "2"}, {"a": "7", "b": "8"}]
    assert [e.split(f"{path}:")[1].split(":")[0] for e in rec.errors] == ["3", "4"]


def test_reports_are_capped_per_pass(start_capture: StartCapture, tmp_path: Path) -> None:
    path = tmp_path / "noise.jsonl"
    path.write_text("oops\n" * (MAX_REPORTS + 5) + '{"n": 1}\n', encoding="utf-8")
    capture, rec = start_capture(StructuredFileCapture, URL=str(path), CAP_RESOLUTION=100)
    assert capture.finished.wait(5)
    assert rec.data == [{"n": 1}]
    assert capture.skipped == MAX_REPORTS + 5  # type: ignore[attr-defined]
    assert len(rec.errors) == MAX_REPORTS


def test_loop_restarts_at_the_end(start_capture: StartCapture, tmp_path: Path) -> None:
    path = tmp_path / "two.csv"
    path.write_text("n\n1\n2\n", encoding="utf-8")
    capture, rec = start_capture(
        StructuredFileCapture, URL=str(path), LOOP=True, CAP_RESOLUTION=100
    )
    assert rec.wait_items(5)
    capture.stop()
    assert [row["n"] for row in rec.data[:5]] == ["1", "2", "1", "2", "1"]
    assert [item.metadata["loops"] for item in rec.items[:5]] == [0, 0, 1, 1, 2]
    assert not capture.finished.is_set()


def test_loop_over_a_file_without_rows_finishes(
    start_capture: StartCapture, tmp_path: Path
) -> None:
    path = tmp_path / "empty.csv"
    path.write_text("n\n", encoding="utf-8")
    capture, rec = start_capture(StructuredFileCapture, URL=str(path), LOOP=True)
    assert capture.finished.wait(5)
    assert rec.items == []


def test_format_can_be_declared(start_capture: StartCapture, tmp_path: Path) -> None:
    path = tmp_path / "export.txt"
    path.write_text("x;y\n1;2\n", encoding="utf-8")
    capture, rec = start_capture(
        StructuredFileCapture, URL=str(path), FORMAT="CSV", DELIMITER=";", CAP_RESOLUTION=100
    )
    assert capture.finished.wait(5)
    assert rec.data == [{"x": "1", "y": "2"}]


def test_missing_file_is_reported_with_its_path(
    start_capture: StartCapture, tmp_path: Path
) -> None:
    path = tmp_path / "absent.jsonl"
    capture, rec = start_capture(StructuredFileCapture, URL=str(path), RECONNECTABLE=False)
    assert capture.finished.wait(5)
    assert len(rec.errors) == 1 and str(path) in rec.errors[0]


def test_duplicate_csv_columns_fail_the_file(start_capture: StartCapture, tmp_path: Path) -> None:
    path = tmp_path / "dup.csv"
    path.write_text("a,a\n1,2\n", encoding="utf-8")
    capture, rec = start_capture(StructuredFileCapture, URL=str(path), RECONNECTABLE=False)
    assert capture.finished.wait(5)
    assert rec.items == [] and f"{path}:1:" in rec.errors[0]


@pytest.mark.parametrize(
    ("wire", "key"),
    [
        ({"URL": "data.parquet"}, "FORMAT"),
        ({"URL": "data.csv", "FORMAT": "xml"}, "FORMAT"),
        ({"URL": "data.csv", "DELIMITER": ";;"}, "DELIMITER"),
        ({"URL": "data.csv", "ENCODING": "klingon"}, "ENCODING"),
        ({"URL": "data.csv", "ENCODING": "utf-16"}, "ENCODING"),
        ({"URL": "data.csv", "LOOP": "sometimes"}, "LOOP"),
        ({}, "URL"),
    ],
)
def test_bad_settings_are_refused_naming_the_key(wire: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        make_config(StructuredFileCapture, **wire)
