"""``Result.to_dataset()`` carries what the JSON report carries (the conditions' and every axis
state's interval, the ``--method nuts`` diagnostics) and writes to netCDF."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from .conftest import example_result
from .test_nuts_report import _nuts_result


def _round_trip(ds: xr.Dataset, tmp_path) -> xr.Dataset:
    path = tmp_path / "result.nc"
    ds.to_netcdf(path, engine="h5netcdf")
    with xr.open_dataset(path, engine="h5netcdf") as back:
        return back.load()


@pytest.mark.parametrize("name", ["hard_macroprolactinaemia.yaml",
                                  "primary_hypothyroidism_01.yaml"])
def test_dataset_has_the_json_intervals(name, tmp_path):
    result = example_result(name)
    ds, d = result.to_dataset(), result.to_dict()
    iv = ds["probability_interval"]
    assert list(ds["bound"].values) == ["lower", "upper"]
    for cond, row in [*d["conditions"].items(), ("none", d["none"])]:
        got = iv.sel(condition=cond).values
        assert got == pytest.approx(row["interval"], abs=1e-6)
    assert d["other_states"] or name != "hard_macroprolactinaemia.yaml"
    for row in d["other_states"]:
        got = ds[f"state_{row['axis']}_interval"].sel({f"{row['axis']}_state": row["state"]})
        assert got.values == pytest.approx(row["interval"], abs=1e-6)
    for axis, states in d["axes"].items():
        prior = ds[f"state_{axis}_prior"]
        lo, hi = ds[f"state_{axis}_interval"].transpose("bound", ...).values
        assert np.all(lo <= hi)
        for st, row in states.items():
            assert float(prior.sel({f"{axis}_state": st})) == pytest.approx(row["prior"])
    back = _round_trip(ds, tmp_path)
    xr.testing.assert_allclose(back, ds)
    assert back.attrs["case_id"] == d["case_id"]


def test_dataset_has_the_nuts_diagnostics(tmp_path):
    result = _nuts_result()
    ds, nuts = result.to_dataset(), result.to_dict()["nuts"]
    (combo,) = nuts["state_combinations"]
    assert ds.sizes["nuts_combination"] == 1
    assert float(ds["nuts_r_hat_max"][0]) == pytest.approx(combo["r_hat_max"])
    assert float(ds["nuts_ess_bulk_min"][0]) == pytest.approx(combo["ess_bulk_min"])
    assert int(ds["nuts_divergences"][0]) == combo["divergences"]
    assert bool(ds["nuts_weak"][0]) is combo["weak"]
    assert str(ds["nuts_problems"].values[0]) == "; ".join(combo["problems"])
    for row in nuts["latents"]:
        lat = ds.sel(nuts_latent=f"{row['axis']}.{row['latent']}")
        assert float(lat["nuts_latent_log_mean"]) == pytest.approx(row["log_mean"])
        assert float(lat["nuts_latent_mcse"]) == pytest.approx(row["mcse"])
        assert float(lat["nuts_latent_exact_log_mean"]) == pytest.approx(row["exact_log_mean"])
        assert bool(lat["nuts_latent_agrees"]) is row["agrees"]
    assert ds.attrs["nuts_method"] == nuts["method"]
    assert ds.attrs["nuts_agrees_with_exact"] == int(nuts["agrees_with_exact"])
    assert all(w in ds.attrs["nuts_warnings"] for w in nuts["warnings"])
    back = _round_trip(ds, tmp_path)
    assert back["nuts_r_hat_max"].values == pytest.approx(ds["nuts_r_hat_max"].values)
    assert bool(back["nuts_weak"][0]) is combo["weak"]
    assert back.attrs["nuts_warnings"] == ds.attrs["nuts_warnings"]
