"""Spectral and L2 fidelity metrics for any 2-D field (or the last two axes of an N-D array).

Conventions, shared by all three functions:

- A field f of shape (..., H, W) is a stack of 2-D slices on a grid of equal spacing in both
  directions. Its Fourier coefficients are ``f_hat = fft2(f) / (H W)`` (periodic extension; a
  non-periodic field such as a lat-lon slice gets the usual edge leakage, equally for truth and
  reconstruction).
- Wavenumbers are counted in cycles per ``N = max(H, W)`` grid points:
  ``|k| = N sqrt((i / H)^2 + (j / W)^2)`` for integer frequencies i, j, so on a periodic square
  of side N the wavenumbers are the usual integers 0..N/2.
- Missing values: NaN and +-inf are filled, slice by slice, with the mean of that slice's finite
  values before the FFT (a constant adds energy at k = 0 only). A slice with no finite value is
  refused with ValueError. Convert other fill values (e.g. 1e20) to NaN first.
"""

from __future__ import annotations

import numpy as np


def _filled(field) -> np.ndarray:
    """float64 copy of ``field`` (..., H, W) with non-finite values set to their slice's finite mean."""
    f = np.array(field, dtype=np.float64)
    if f.ndim < 2:
        raise ValueError(f"need a field with at least 2 dimensions, got shape {f.shape}")
    bad = ~np.isfinite(f)
    if bad.any():
        good = ~bad
        count = good.sum(axis=(-2, -1), keepdims=True)
        if (count == 0).any():
            raise ValueError("a 2-D slice has no finite value; its spectrum is undefined")
        mean = np.where(good, f, 0.0).sum(axis=(-2, -1), keepdims=True) / count
        f = np.where(bad, mean, f)
    return f


def radial_spectrum(field) -> tuple[np.ndarray, np.ndarray]:
    """The radially-binned energy spectrum E(k), k = 0, 1, ..., floor(N / 2), of a field (..., H, W).

    ``E(k) = 1/2 sum_{k - 1/2 <= |k'| < k + 1/2} |f_hat(k')|^2``: the energy of each shell of
    wavenumbers (the radially-averaged spectrum times the shell's mode count, so that
    ``sum_k E(k)`` is half the mean square of the field up to the corner modes beyond N / 2, which
    are left out). Leading axes are averaged: E is the mean of the slices' spectra.

    Returns ``(k, E)``, both float64 of length ``N // 2 + 1``.
    """
    f = _filled(field)
    h, w = f.shape[-2:]
    n = max(h, w)
    f_hat = np.fft.fft2(f, axes=(-2, -1)) / (h * w)
    power = 0.5 * np.abs(f_hat) ** 2
    power = power.reshape(-1, h, w).mean(axis=0)
    kk = n * np.hypot(np.fft.fftfreq(h)[:, None], np.fft.fftfreq(w)[None, :])
    shell = np.rint(kk).astype(np.int64).ravel()
    k_max = n // 2
    keep = shell <= k_max
    energy = np.bincount(shell[keep], weights=power.ravel()[keep], minlength=k_max + 1)
    return np.arange(k_max + 1, dtype=np.float64), energy


def spectral_error(x, y, k_min: float = 0.0, k_max: float | None = None) -> float:
    """RMS error of the log energy spectrum of ``y`` against the truth ``x`` over k_min < k <= k_max.

    ``err = sqrt(mean_{k_min < k <= k_max} (ln E_y(k) - ln E_x(k))^2)``, with E from
    :func:`radial_spectrum` (leading axes averaged). err = 0.1 means the reconstruction's shell
    energies are off by a typical factor of about exp(0.1) = 1.105. A floor of 1e-12 x max E_x is
    added to both spectra, so an empty shell does not give an infinite error.

    Which k: for a model with a latent of side L, ``k_min = L / 2`` (the latent's Nyquist
    wavenumber: what the latent cannot carry). For any other codec, ``k_min = 0`` (the default):
    every wavenumber from 1 to N / 2. ``k_max`` defaults to N / 2.
    """
    k, ex = radial_spectrum(x)
    _, ey = radial_spectrum(y)
    if ex.shape != ey.shape:
        raise ValueError(f"x and y must have the same last two axes, got {np.shape(x)} and {np.shape(y)}")
    band = (k > k_min) & (k <= (k[-1] if k_max is None else k_max))
    if not band.any():
        raise ValueError(f"no wavenumber in ({k_min}, {k_max}]; the fields resolve k up to {k[-1]:g}")
    floor = 1e-12 * max(float(ex.max()), np.finfo(float).tiny)
    d = np.log(ey[band] + floor) - np.log(ex[band] + floor)
    return float(np.sqrt(np.mean(d**2)))


def relative_l2(x, y) -> float:
    """``||y - x||_2 / ||x||_2`` over all points where both are finite (every axis at once).

    0 when ``y == x``; ``inf`` when ``x`` is zero there and ``y`` is not.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x and y must have the same shape, got {x.shape} and {y.shape}")
    ok = np.isfinite(x) & np.isfinite(y)
    num, den = np.linalg.norm(y[ok] - x[ok]), np.linalg.norm(x[ok])
    if den == 0:
        return 0.0 if num == 0 else float("inf")
    return float(num / den)
