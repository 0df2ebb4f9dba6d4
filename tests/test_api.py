"""Tests for analyzer.api and analyzer.sections: the Python API a notebook uses."""

from __future__ import annotations

import gzip
import inspect
import shutil
import warnings
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import pytest

import analyzer
from analyzer import filters
from analyzer.codes import EdeCode
from analyzer.errors import CaptureError, EdePcapError

SAMPLES = Path("samples")
INCIDENT = str(SAMPLES / "incident.pcap")


def test_missing_file_raises_file_not_found(tmp_path: Path) -> None:
    missing = tmp_path / "missing.pcap"
    for reader in (analyzer.read_ede, analyzer.read_responses, analyzer.scan):
        with pytest.raises(FileNotFoundError) as info:
            reader(missing)
        assert info.value.filename == str(missing)


def test_not_a_capture_raises_capture_error(tmp_path: Path) -> None:
    text = tmp_path / "notes.pcap"
    text.write_text("this is not a capture\n")
    with pytest.raises(CaptureError) as info:
        analyzer.read_ede(text)
    assert isinstance(info.value, EdePcapError)
    assert info.value.path == str(text)
    assert info.value.offset == 0
    assert "is not a pcap, pcapng or dnstap file" in str(info.value)
    # a good file beside it does not hide the bad one
    with pytest.raises(CaptureError):
        analyzer.read_ede([INCIDENT, text])


def test_empty_glob_and_directory_without_captures_raise(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="no files match"):
        analyzer.read_ede(str(tmp_path / "*.pcap"))
    (tmp_path / "readme.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match="no capture files"):
        analyzer.read_ede(tmp_path)


def test_collect_keeps_going_and_reports_failures(tmp_path: Path) -> None:
    text = tmp_path / "notes.pcap"
    text.write_text("not a capture")
    missing = tmp_path / "missing.pcap"
    result = analyzer.scan([INCIDENT, text, missing], errors="collect")
    assert len(result.ede) == 312
    assert sorted(c.path for c in result.failed) == sorted([str(text), str(missing)])
    with pytest.warns(analyzer.CaptureWarning, match="notes.pcap"):
        df = analyzer.read_ede([INCIDENT, text], errors="collect")
    assert len(df) == 312
    with pytest.raises(ValueError, match="errors="):
        analyzer.scan(INCIDENT, errors="ignore")  # type: ignore[arg-type]


def test_truncated_capture_is_read_not_raised() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        result = analyzer.scan(SAMPLES / "broken" / "truncated.pcap")
    assert result.captures[0].truncated_at is not None
    assert result.accounting["capture-truncated"] == 1


def test_globs_and_directories_as_the_cli_takes_them(tmp_path: Path) -> None:
    for name in ("incident.pcap", "after.pcap"):
        shutil.copy(SAMPLES / name, tmp_path / name)
    with open(SAMPLES / "before.pcap", "rb") as src, gzip.open(tmp_path / "b.pcap.gz", "wb") as gz:
        gz.write(src.read())
    (tmp_path / "notes.txt").write_text("not read")
    by_dir = analyzer.read_ede(tmp_path)
    by_glob = analyzer.read_ede(str(tmp_path / "*.pcap*"))
    by_list = analyzer.read_ede([tmp_path / "after.pcap", tmp_path / "b.pcap.gz",
                                 tmp_path / "incident.pcap"])
    assert len(by_dir) == len(by_glob) == len(by_list) > 312
    assert set(by_dir["capture"].astype(str)) == {
        str(tmp_path / n) for n in ("after.pcap", "b.pcap.gz", "incident.pcap")}


def test_filters_take_numbers_names_and_times() -> None:
    df = analyzer.read_ede(INCIDENT, codes=[7])
    assert set(df["ede_code"]) == {7} and len(df) == 137
    both = analyzer.read_ede(INCIDENT, codes=[EdeCode.SIGNATURE_EXPIRED, "dnssec-bogus"])
    assert both["ede_code"].value_counts().to_dict() == {7: 137, 6: 110}
    assert len(analyzer.read_ede(INCIDENT, codes=7)) == 137
    import numpy as np

    # a code taken from a frame is a numpy integer
    assert len(analyzer.read_ede(INCIDENT, codes=[np.int64(7)], ports=[np.int64(53)])) == 137
    shop = analyzer.read_ede(INCIDENT, domains="shop.example.com")
    assert len(shop) and shop["qname"].astype(str).str.endswith("shop.example.com").all()
    since = pd.Timestamp("2024-03-12 09:12:00", tz="UTC")
    until = datetime(2024, 3, 12, 9, 15, tzinfo=UTC)
    window = analyzer.read_ede(INCIDENT, since=since, until=until)
    assert len(window) and window["ts"].min() >= since and window["ts"].max() < until
    assert len(analyzer.read_ede(INCIDENT, resolvers=["2001:db8::/32"])) < 312
    resp = analyzer.read_responses(INCIDENT, codes=[7])
    assert len(resp) == 137 and resp["ede_codes"].str.contains("7").all()


def test_filters_build_accepts_python_values() -> None:
    import numpy as np

    built = filters.build(codes=[7, "6", EdeCode.STALE_ANSWER], since=1710234000)
    assert built.codes == (7, 6, 3)
    assert built.since == datetime(2024, 3, 12, 9, 0, tzinfo=UTC)
    for bad in ([70000], [-1], [1.5], [True], [np.bool_(True)], [None]):
        with pytest.raises(filters.FilterError):
            filters.build(codes=bad)
    with pytest.raises(analyzer.FilterError, match="not a number or known code name"):
        analyzer.read_ede(INCIDENT, codes=["no-such-code"])
    with pytest.raises(ValueError, match="jobs"):
        analyzer.read_ede(INCIDENT, jobs=0)
    with pytest.raises(ValueError, match="port"):
        analyzer.read_ede(INCIDENT, ports=[70000])


def test_options_match_jobs_and_ports() -> None:
    one = analyzer.read_ede([INCIDENT, "samples/after.pcap"])
    two = analyzer.read_ede([INCIDENT, "samples/after.pcap"], jobs=2)
    pd.testing.assert_frame_equal(one, two)
    assert analyzer.read_ede(INCIDENT, ports=[5353]).empty


def test_signatures_are_typed_and_documented() -> None:
    for func in (analyzer.scan, analyzer.read_ede, analyzer.read_responses):
        sig = inspect.signature(func)
        for name in ("codes", "domains", "resolvers", "since", "until", "ports", "jobs",
                     "errors"):
            assert name in sig.parameters, (func.__name__, name)
            assert sig.parameters[name].kind is inspect.Parameter.KEYWORD_ONLY
            assert sig.parameters[name].annotation is not inspect.Parameter.empty
        assert func.__doc__ and sig.return_annotation is not inspect.Parameter.empty
    assert {"scan", "read_ede", "CaptureError", "report_frames"} <= set(dir(analyzer))


def test_scan_result_repr_is_short() -> None:
    result = analyzer.scan(INCIDENT)
    text = repr(result)
    assert text == ("<ScanResult: 1 capture, 4,468 packets, 2,234 DNS responses, "
                    "312 EDE rows with 7 codes>")
    filtered = analyzer.scan(INCIDENT, codes=[7])
    assert "137 EDE rows (filtered) with 1 code>" in repr(filtered)


def test_report_of_a_filtered_scan_uses_its_filters() -> None:
    report = analyzer.scan(INCIDENT, codes=[7]).report()
    assert [c["code"] for c in report["codes"]] == [7]
    assert report["filters"]["codes"] == [7]


def test_report_frames_are_typed() -> None:
    frames = analyzer.report_frames(analyzer.scan(INCIDENT))
    assert {"captures", "codes", "domains", "zones", "resolvers", "incidents",
            "timeseries"} <= set(frames)
    codes = frames["codes"]
    assert str(codes["first_seen"].dtype) == "datetime64[ns, UTC]"
    assert codes["count"].dtype == "Int64" and codes["share"].dtype == "Float64"
    assert codes.loc[codes["code"] == 7, "rcodes"].item() == "SERVFAIL 137"
    assert codes.loc[codes["code"] == 7, "count"].item() == 137
    incidents = frames["incidents"]
    assert incidents.loc[0, "start"] == pd.Timestamp("2024-03-12 09:12:00", tz="UTC")
    captures = frames["captures"]
    assert captures["error_offset"].dtype == "Int64"
    for name, frame in frames.items():
        for column in frame.columns:
            cells = frame[column].dropna().tolist()
            assert not any(isinstance(c, (dict, list)) for c in cells), (name, column)
    series = frames["timeseries"]
    assert str(series["ts"].dtype) == "datetime64[ns, UTC]"
    assert series.groupby("code")["count"].sum().to_dict()[7] == 137
    steps = series.loc[series["code"] == 7, "ts"].diff().dropna().unique()
    assert list(steps) == [pd.Timedelta(seconds=15)]
    assert len(series) == 7 * 120


def test_report_frames_of_an_empty_capture() -> None:
    frames = analyzer.report_frames(analyzer.scan(SAMPLES / "broken" / "empty.pcap",
                                                  errors="collect"))
    assert frames["codes"].empty
    assert str(frames["timeseries"]["ts"].dtype) == "datetime64[ns, UTC]"
