"""The same chunks on a Dask distributed cluster (a LocalCluster on loopback)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from neb_bayes.batch import BatchOptions, run_batch
from neb_bayes.batch.export import case_to_dict

from .conftest import errors, results

distributed = pytest.importorskip("distributed", reason="dask[distributed] is not installed")


@pytest.fixture(scope="module")
def cluster() -> Iterator[distributed.LocalCluster]:
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  host="127.0.0.1", dashboard_address=None,
                                  silence_logs=40) as local:
        yield local


def test_dask_cluster_gives_the_local_result(tmp_path, cluster, sim_cases, schema) -> None:
    path = tmp_path / "c.jsonl"
    with open(path, "w", encoding="utf-8") as fh:
        for i, case in enumerate(sim_cases[:90]):
            fh.write(json.dumps(case_to_dict(case)) + "\n")
            if i == 44:
                fh.write('{"id": "broken", "measurements": [{"analyte": "TSH"}]}\n')
    local = tmp_path / "local"
    remote = tmp_path / "remote"
    run_batch(BatchOptions(inputs=[str(path)], out=str(local), chunk_size=1000,
                           progress=False), echo=lambda _: None)
    summary = run_batch(BatchOptions(inputs=[str(path)], out=str(remote), chunk_size=10,
                                     scheduler=cluster.scheduler_address, progress=False),
                        echo=lambda _: None)
    assert summary.chunks == 10 and summary.processed == 91 and summary.failed == 1
    assert results(remote, schema).equals(results(local, schema))
    assert errors(remote) == errors(local)
    (record,) = errors(remote)
    assert record["case_id"] == "broken"
    assert {e["path"] for e in record["errors"]} == {"measurements[0].value",
                                                     "measurements[0].unit"}
