"""The Parquet dataset: layout, file schema, round trip, and what other readers see."""

from __future__ import annotations

import glob
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analyzer import dataset, frame, pipeline
from analyzer.cli import app

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = sorted(str(Path(p).relative_to(ROOT)) for p in glob.glob(str(ROOT / "samples/*.pcap*")))
ODD_NAME = "site a/é,x=1%.pcap"  # a space, a slash, non-ASCII, and characters Hive escapes


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def ede() -> pd.DataFrame:
    """The samples' EDE frame, with incident.pcap renamed to ODD_NAME."""
    df = pipeline.read_ede(SAMPLES)
    df["capture"] = df["capture"].cat.rename_categories(
        lambda c: ODD_NAME if c == "samples/incident.pcap" else c)
    return df


def in_microseconds(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` with the precision the dataset keeps: timestamps to the microsecond."""
    return df.assign(ts=df["ts"].dt.floor("us"), query_ts=df["query_ts"].dt.floor("us"))


def test_round_trip_gives_the_declared_schema(ede: pd.DataFrame, tmp_path: Path) -> None:
    dataset.write(ede, tmp_path)
    back = dataset.read(tmp_path)
    assert [str(t) for t in back.dtypes] == [str(t) for t in frame.empty_ede().dtypes]
    want = in_microseconds(ede).astype({"capture": str})
    want = want.sort_values(["capture", "frame_number", "ede_index"])
    pd.testing.assert_frame_equal(back.astype({"capture": str}), want.reset_index(drop=True),
                                  check_categorical=False)


def test_responses_round_trip(tmp_path: Path) -> None:
    responses = pipeline.read_responses(["samples/incident.pcap", "samples/all-codes.pcapng"])
    dataset.write(responses, tmp_path)
    back = dataset.read(tmp_path, all_responses=True)
    assert len(back) == len(responses)
    pd.testing.assert_frame_equal(back, in_microseconds(responses), check_categorical=False)


def test_layout_is_hive_by_date_then_capture(ede: pd.DataFrame, tmp_path: Path) -> None:
    written = dataset.write(ede, tmp_path)
    days = ede["ts"].dt.strftime("%Y-%m-%d")
    want = {f"date={d}/capture={dataset.partition_name(c)}/part-0.parquet"
            for d, c in zip(days, ede["capture"].astype(str), strict=True)}
    assert {p.relative_to(tmp_path).as_posix() for p in written} == want
    assert {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()} \
        == want
    assert "date=2024-03-12/capture=site%20a%2F\u00e9%2Cx%3D1%25.pcap/part-0.parquet" in want


def test_files_use_types_every_reader_takes(ede: pd.DataFrame, tmp_path: Path) -> None:
    written = dataset.write(ede, tmp_path)
    schema = pq.read_schema(written[0])
    assert "capture" not in schema.names and "date" not in schema.names
    assert schema.names == [c for c in frame.EDE_COLUMNS if c != "capture"]
    for field in schema:
        assert not pa.types.is_unsigned_integer(field.type), field
        if pa.types.is_timestamp(field.type):
            assert (field.type.unit, field.type.tz) == ("us", "UTC"), field
    assert schema.field("ede_name").type == pa.dictionary(pa.int32(), pa.string())
    assert schema.field("src_port").type == pa.int32()
    assert schema.field("latency").type == pa.duration("ns")


def test_large_captures_are_split_into_parts(ede: pd.DataFrame, tmp_path: Path) -> None:
    one = ede[ede["capture"] == ODD_NAME]
    written = dataset.write(one, tmp_path, rows_per_file=100)
    assert [p.name for p in written] == [f"part-{i}.parquet" for i in range(-(-len(one) // 100))]
    assert len(dataset.read(tmp_path)) == len(one)


def test_writing_a_capture_again_replaces_it(ede: pd.DataFrame, tmp_path: Path) -> None:
    dataset.write(ede, tmp_path)
    fewer = ede[(ede["capture"] == ODD_NAME) & (ede["ede_code"] == 22)]
    dataset.write(fewer, tmp_path)
    back = dataset.read(tmp_path)
    assert (back["capture"] == ODD_NAME).sum() == len(fewer)
    assert len(back) == len(ede) - (ede["capture"] == ODD_NAME).sum() + len(fewer)
    # a capture scanned again with no rows left loses its old ones
    dataset.write(frame.empty_ede(), tmp_path, captures=[ODD_NAME])
    assert ODD_NAME not in set(dataset.read(tmp_path)["capture"].astype(str))
    assert not list(tmp_path.rglob("*.tmp"))


def test_empty_frame_writes_nothing(tmp_path: Path) -> None:
    assert dataset.write(frame.empty_ede(), tmp_path / "out") == []
    back = dataset.read(tmp_path / "out")
    assert back.empty
    assert [str(t) for t in back.dtypes] == [str(t) for t in frame.empty_ede().dtypes]


@pytest.mark.parametrize(("capture", "name"), [
    ("samples/incident.pcap", "samples%2Fincident.pcap"),
    ("site a/x.pcap", "site%20a%2Fx.pcap"),
    ("a=b%c:d*?[]", "a%3Db%25c%3Ad%2A%3F%5B%5D"),
    ("caf\u00e9.pcap", "caf\u00e9.pcap"),           # Hive and Spark decode %XX per byte
    ("\udcff.pcap", "%FF.pcap"),                     # a file name that is not UTF-8
    ("-._~", "-._~"),
])
def test_partition_name(capture: str, name: str) -> None:
    assert dataset.partition_name(capture) == name


def test_long_partition_names_stay_short_and_distinct() -> None:
    a = dataset.partition_name("/x" * 300 + "/site-1.pcap")
    b = dataset.partition_name("/y" * 300 + "/site-1.pcap")
    assert a != b
    assert a.endswith("%2Fsite-1.pcap") and b.endswith("%2Fsite-1.pcap")
    assert max(len(a.encode()), len(b.encode())) <= 200


# --- other readers ---------------------------------------------------------------------------

def test_dask_reads_the_dataset(ede: pd.DataFrame, tmp_path: Path) -> None:
    import dask.dataframe as dd

    dataset.write(ede, tmp_path)
    got = dd.read_parquet(str(tmp_path)).compute()
    assert len(got) == len(ede)
    assert set(got["capture"].astype(str)) == set(ede["capture"].astype(str))
    assert str(got["ts"].dtype) == "datetime64[us, UTC]"
    assert str(got["src_port"].dtype) == "Int32"  # nullable, as written
    counts = got.groupby("ede_code").size()
    assert counts.to_dict() == ede.groupby("ede_code").size().to_dict()


def test_duckdb_reads_the_dataset(ede: pd.DataFrame, tmp_path: Path) -> None:
    duckdb = pytest.importorskip("duckdb")
    dataset.write(ede, tmp_path)
    # the query in docs/scale-out.md
    rows = duckdb.sql(f"""
        SELECT date, capture, ede_code, ede_name, count(*) AS n
        FROM read_parquet('{tmp_path}/**/*.parquet', hive_partitioning = true)
        GROUP BY ALL ORDER BY n DESC, capture, ede_code
    """).fetchall()
    want = (ede.assign(capture=ede["capture"].astype(str))
            .groupby(["capture", "ede_code"]).size())
    assert {(r[1], r[2]): r[4] for r in rows} == want.to_dict()
    assert ODD_NAME in {r[1] for r in rows}
    described = {r[0]: r[1] for r in duckdb.sql(
        f"DESCRIBE SELECT * FROM read_parquet('{tmp_path}/**/*.parquet', "
        "hive_partitioning = true)").fetchall()}
    assert described["ts"] == "TIMESTAMP WITH TIME ZONE"
    assert described["date"] == "DATE"
    assert described["ede_code"] == "INTEGER"


# --- the command -----------------------------------------------------------------------------

@pytest.mark.parametrize("output", ["edes", "edes/"])
def test_extract_to_a_directory_writes_a_dataset(tmp_path: Path, output: str) -> None:
    target = tmp_path / output
    result = CliRunner().invoke(app, ["extract", "--format", "parquet", "--output",
                                      str(target) + ("/" if output.endswith("/") else ""),
                                      "samples/incident.pcap", "samples/after.pcap"])
    assert result.exit_code == 0, result.output
    back = dataset.read(target)
    assert set(back["capture"].astype(str)) == {"samples/incident.pcap", "samples/after.pcap"}
    assert len(back) == len(pipeline.read_ede(["samples/incident.pcap", "samples/after.pcap"]))


def test_extract_to_a_parquet_file_still_writes_one_file(tmp_path: Path) -> None:
    target = tmp_path / "edes.parquet"
    result = CliRunner().invoke(app, ["extract", "--output", str(target),
                                      "samples/incident.pcap"])
    assert result.exit_code == 0, result.output
    assert target.is_file()
    assert len(pd.read_parquet(target)) == len(pipeline.read_ede("samples/incident.pcap"))
