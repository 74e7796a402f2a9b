import os

import pytest
from hypothesis import HealthCheck, settings

# CI has 2 cores: keep property tests bounded and free of wall-clock deadlines.
settings.register_profile("ci", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny networks train fastest on one thread, and do not stall when another process holds the other core."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def carry_any_model(monkeypatch):
    """Carry a model whether or not it pays: the tiny models here never do, and the mechanism is under test."""
    from xdiffc.xarray import climatology_choice as climatology

    real = climatology.pays_for_itself
    monkeypatch.setattr(climatology, "pays_for_itself", lambda da, config, extra, chunks: "model_file" in extra
                        or real(da, config, extra, chunks))


@pytest.fixture(scope="session")
def cluster():
    """Two Dask worker processes of one thread, on loopback, for the conversion tests: started (and their kernels
    loaded) once for the session."""
    from distributed import LocalCluster

    with LocalCluster(n_workers=2, threads_per_worker=1, host="127.0.0.1", dashboard_address=None) as c:
        yield c.scheduler_address
