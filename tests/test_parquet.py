"""Parquet files from `ede-pcap extract`: one fixed Arrow schema, many files as one table.

Two captures with different columns left empty (incident.pcap has key tags and RRSIG
expirations, after.pcap none) are written to two files and read back as one table by
pyarrow.dataset, pandas, DuckDB and Dask.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from analyzer import dataset, frame, textfacts
from analyzer.cli import app
from analyzer.pipeline import read_ede, read_responses

ROOT = Path(__file__).resolve().parent.parent
CAPTURES = ("samples/incident.pcap", "samples/after.pcap")


@pytest.fixture(autouse=True)
def _in_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """Return two Parquet files written by the CLI, one per capture."""
    out = tmp_path_factory.mktemp("parquet")
    paths = []
    for capture in CAPTURES:
        target = out / (Path(capture).stem + ".parquet")
        result = CliRunner().invoke(app, ["extract", capture, "-o", str(target), "-q"])
        assert result.exit_code == 0, result.output
        paths.append(str(target))
    return paths


@pytest.fixture(scope="module")
def want() -> pd.DataFrame:
    """The two captures' rows as the library gives them, fact columns included."""
    return textfacts.add_fact_columns(read_ede(list(CAPTURES)))


def expected_schema() -> pa.Schema:
    dtypes = {**frame.EDE_DTYPES, **textfacts.FACT_DTYPES}
    return dataset.arrow_schema(dtypes, partitions=())


def test_every_column_has_its_declared_type(files: list[str]) -> None:
    schema = expected_schema()
    for path in files:
        got = pq.read_schema(path)
        assert got.remove_metadata() == schema
        assert not any(pa.types.is_null(f.type) for f in got)
    empty = pq.read_table(files[1])
    # after.pcap states no key tag and no expiration: typed, all missing
    assert empty.column("fact_key_tag").type == pa.int32()
    assert empty.column("fact_key_tag").null_count == empty.num_rows == 19
    assert empty.column("report_channel").type == pa.dictionary(pa.int32(), pa.string())


def test_pyarrow_dataset_reads_both_as_one_table(files: list[str], want: pd.DataFrame) -> None:
    table = ds.dataset(files, format="parquet").to_table()
    assert table.num_rows == len(want) == 331
    assert table.column("fact_key_tag").drop_null().to_pylist() == \
        want["fact_key_tag"].dropna().astype(int).tolist()
    counts = table.group_by("ede_code").aggregate([("ede_code", "count")]).to_pydict()
    assert dict(zip(counts["ede_code"], counts["ede_code_count"], strict=True)) == \
        want["ede_code"].astype(int).value_counts().to_dict()


def test_pandas_reads_both_with_categories(files: list[str], want: pd.DataFrame) -> None:
    df = pd.read_parquet(files)
    assert len(df) == 331
    for name, dtype in frame.EDE_DTYPES.items():
        if dtype == "category":
            assert isinstance(df[name].dtype, pd.CategoricalDtype), name
    assert sorted(df["capture"].cat.categories) == sorted(CAPTURES)
    assert str(df["ts"].dtype) == "datetime64[us, UTC]"
    assert df["ede_code"].dtype == "Int32" and df["aa"].dtype == "boolean"
    key = ["capture", "frame_number", "ede_index"]
    df = df.astype({"capture": str}).sort_values(key, ignore_index=True)
    want = want.astype({"capture": str}).sort_values(key, ignore_index=True)
    pd.testing.assert_series_equal(df["ts"].dt.as_unit("ns"), want["ts"].dt.floor("us"))
    assert df["qname"].astype(str).tolist() == want["qname"].astype(str).tolist()
    assert df["fact_expiration"].notna().sum() == want["fact_expiration"].notna().sum() > 0


def test_duckdb_reads_both(files: list[str], want: pd.DataFrame) -> None:
    duckdb = pytest.importorskip("duckdb")
    rows = duckdb.sql(
        "SELECT capture, count(*), count(fact_key_tag), count(report_channel), "
        f"min(ts) FROM read_parquet({files!r}) GROUP BY capture ORDER BY capture").fetchall()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        ("samples/after.pcap", 19, 0, 0), ("samples/incident.pcap", 312, 137, 0)]
    first = want.groupby(want["capture"].astype(str))["ts"].min()
    assert pd.Timestamp(rows[1][4]).tz_convert("UTC") == first["samples/incident.pcap"]


def test_dask_reads_both(files: list[str], want: pd.DataFrame) -> None:
    dd = pytest.importorskip("dask.dataframe")
    lazy = dd.read_parquet(files)
    assert lazy.npartitions == 2
    df = lazy.compute()
    assert len(df) == 331
    assert isinstance(df["fact_rrtype"].dtype, pd.CategoricalDtype)
    assert df.groupby("ede_code").size().to_dict() == \
        want["ede_code"].astype(int).value_counts().to_dict()


def test_response_files_read_as_one_table(tmp_path: Path) -> None:
    paths = []
    for capture in ("samples/incident.pcap", "samples/transports.pcap"):
        target = tmp_path / (Path(capture).stem + ".parquet")
        result = CliRunner().invoke(app, ["extract", capture, "--all-responses", "-o",
                                          str(target), "-q"])
        assert result.exit_code == 0, result.output
        paths.append(str(target))
    schema = dataset.arrow_schema(frame.RESPONSE_DTYPES, partitions=())
    assert all(pq.read_schema(p).remove_metadata() == schema for p in paths)
    table = ds.dataset(paths, format="parquet").to_table()
    assert table.num_rows == len(read_responses(["samples/incident.pcap",
                                                 "samples/transports.pcap"]))


def test_dataset_read_drops_the_placeholder_category(tmp_path: Path) -> None:
    df = read_ede("samples/after.pcap")
    dataset.write(df, tmp_path)
    back = dataset.read(tmp_path)
    assert list(back["report_channel"].cat.categories) == []
    assert "" in back["extra_text"].cat.categories or (df["extra_text"] != "").all()
