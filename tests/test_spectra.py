"""Spectral metrics against analytic spectra."""

import numpy as np
import pytest

from xdiffc.spectra import radial_spectrum, relative_l2, spectral_error


def _grid(h, w):
    return np.meshgrid(np.arange(h) / h, np.arange(w) / w, indexing="ij")


@pytest.mark.parametrize("k0, direction", [(1, "x"), (5, "y"), (12, "x")])
def test_a_single_sine_has_all_its_energy_at_one_wavenumber(k0, direction):
    y, x = _grid(64, 64)
    f = 3.0 * np.sin(2 * np.pi * k0 * (x if direction == "x" else y))
    k, e = radial_spectrum(f)
    assert k.tolist() == list(range(33))
    assert e[k0] == pytest.approx(0.5 * np.mean(f**2), rel=1e-12)  # Parseval: all of 1/2 <f^2>
    assert np.delete(e, k0).max() < 1e-25


def test_diagonal_wave_lands_in_its_radial_shell_and_non_square_grids_share_units():
    y, x = _grid(64, 64)
    k, e = radial_spectrum(np.cos(2 * np.pi * (3 * x + 4 * y)))  # |k| = 5
    assert np.argmax(e) == 5 and e[5] == pytest.approx(0.25)
    y, x = _grid(32, 64)
    k, e = radial_spectrum(np.sin(2 * np.pi * 4 * y))  # 4 cycles over 32 rows = 8 per 64 points
    assert len(k) == 33 and np.argmax(e) == 8


def test_leading_axes_are_averaged_and_nan_is_filled_with_the_slice_mean():
    y, x = _grid(32, 32)
    stack = np.stack([np.sin(2 * np.pi * 2 * x), 2 * np.sin(2 * np.pi * 2 * x)])
    _, e = radial_spectrum(stack)
    assert e[2] == pytest.approx((0.25 + 1.0) / 2)
    f = 5.0 + np.zeros((32, 32))
    f[3, 4] = np.nan
    _, e = radial_spectrum(f)
    assert e[0] == pytest.approx(12.5) and e[1:].max() == 0
    with pytest.raises(ValueError):
        radial_spectrum(np.full((2, 8, 8), np.nan))


def test_spectral_error_is_the_rms_log_ratio_over_the_band():
    rng = np.random.default_rng(0)
    f = rng.standard_normal((4, 64, 64))
    assert spectral_error(f, f) == 0.0
    assert spectral_error(f, 2 * f) == pytest.approx(np.log(4.0))  # every shell off by a factor 4
    shell = np.rint(np.hypot(*np.meshgrid(np.fft.fftfreq(64) * 64, np.fft.fftfreq(64) * 64, indexing="ij")))
    smooth = np.fft.ifft2(np.fft.fft2(f) * (shell <= 8)).real
    assert spectral_error(f, smooth, k_max=8) < 1e-9  # identical below the cut
    assert spectral_error(f, smooth, k_min=8) > 5  # the smoothed field lost the high shells
    with pytest.raises(ValueError):
        spectral_error(f, f, k_min=40)


def test_relative_l2():
    x = np.array([[3.0, 4.0], [np.nan, 0.0]])
    assert relative_l2(x, x) == 0.0
    assert relative_l2(x, np.array([[3.0, 4.0], [1.0, 5.0]])) == pytest.approx(1.0)
    assert relative_l2(np.zeros((2, 2)), np.ones((2, 2))) == float("inf")
