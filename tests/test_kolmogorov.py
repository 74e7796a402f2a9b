"""Physics checks of the Kolmogorov-flow solver."""

import numpy as np
import pytest
import scipy.fft as sfft

from xdiffc.datasets.kolmogorov import kolmogorov, velocity
from xdiffc.spectra import radial_spectrum


@pytest.fixture(scope="module")
def flow():
    return kolmogorov(4, resolution=64, seed=3, spinup=12.0, interval=1.0)


def test_dataset_layout_and_determinism(flow):
    w = flow["vorticity"]
    assert w.dims == ("time", "y", "x") and w.shape == (4, 64, 64) and w.dtype == np.float32
    assert flow.attrs["re"] == 1000.0 and flow.attrs["solver_resolution"] == 128
    np.testing.assert_allclose(flow["time"], [12.0, 13.0, 14.0, 15.0])
    small = kolmogorov(1, resolution=16, solver_resolution=32, seed=1, spinup=0.5)
    again = kolmogorov(1, resolution=16, solver_resolution=32, seed=1, spinup=0.5)
    assert np.array_equal(small["vorticity"], again["vorticity"])


def test_velocity_is_divergence_free_and_has_the_vorticity_as_curl(flow):
    w = flow["vorticity"].values.astype(np.float64)
    u, v = velocity(w)
    k = np.fft.fftfreq(64, 1 / 64)
    k[32] = 0  # spectral derivative with the Nyquist mode dropped, as velocity() does
    shape = {-1: (1, 64), -2: (64, 1)}
    d = lambda f, axis: sfft.ifft(1j * k.reshape(shape[axis]) * sfft.fft(f, axis=axis), axis=axis).real  # noqa: E731
    div = d(u, -1) + d(v, -2)
    assert np.abs(div).max() < 1e-12 * np.abs(u).max()
    curl = d(v, -1) - d(u, -2)
    # up to the float32 round-off that the stored field carries at the dropped Nyquist modes
    np.testing.assert_allclose(curl, w - w.mean(axis=(-2, -1), keepdims=True), atol=1e-6 * np.abs(w).max())


def test_enstrophy_stays_bounded(flow):
    # d/dt <w^2>/2 = <f w> - nu <|grad w|^2> - drag <w^2> gives <w^2> <= max(<w0^2>, <f^2> / drag^2),
    # with <f^2> = (A k_f)^2 / 2 = 8 and drag = 0.1 here; the initial field has <w0^2> = 4.
    z = (flow["vorticity"].values.astype(np.float64) ** 2).mean(axis=(-2, -1))
    assert np.all(np.isfinite(z)) and z.max() <= 8 / 0.1**2
    assert z.min() > 1.0  # turbulent, not decayed


def test_energy_spectrum_has_a_steep_inertial_range(flow):
    u, v = velocity(flow["vorticity"].values)
    k, eu = radial_spectrum(u)
    _, ev = radial_spectrum(v)
    band = (k >= 6) & (k <= 20)  # between the forcing (k = 4) and the resolution
    slope = np.polyfit(np.log(k[band]), np.log((eu + ev)[band]), 1)[0]
    assert slope < -3.0  # the 2D enstrophy cascade: k^-3 or steeper (drag steepens it)
    assert np.argmax((eu + ev)[1:]) + 1 <= 4  # energy sits at or above the forcing scale
