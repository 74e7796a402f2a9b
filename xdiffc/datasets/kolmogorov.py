"""Kolmogorov flow: 2D incompressible Navier-Stokes in vorticity form, solved pseudo-spectrally.

On the periodic square [0, 2 pi)^2, with nu = 1 / Re::

    d(omega)/dt + u . grad(omega) = nu lap(omega) - drag omega + f,    f = -A k_f cos(k_f y)

``f`` is the curl of the body force (A sin(k_f y), 0) (the "sin(4y)" forcing of Kolmogorov flow,
A = 1, k_f = 4), and the linear drag (0.1) keeps the large scales bounded, as in Kochkov et al.
(2021). The velocity comes from the stream function: lap(psi) = -omega, u = d(psi)/dy,
v = -d(psi)/dx, so div u = 0 holds mode by mode.

Numerics: Fourier modes of the real field (rfft2); the advection term is computed on the grid
and its transform is truncated by the 2/3 rule (modes with |kx| or |ky| >= N/3 zeroed), so the
quadratic product is alias-free. Time stepping is integrating-factor RK4: viscosity and drag are
integrated exactly, the advection explicitly, with dt = cfl * dx / max(|u| + |v|) (cfl = 0.5),
re-chosen at the start of every snapshot interval so that each interval is a whole number of
equal steps. The forcing is steady, so the scheme is fully deterministic for a given seed.

Resolution: at Re = 1000 a 64^2 grid is under-resolved (the enstrophy cascade reaches past its
2/3 cut-off), so the solver runs at ``solver_resolution`` (default 2 x ``resolution``, 128 for 64)
and the snapshots are truncated spectrally to ``resolution`` (modes |k| < resolution / 2 kept).
"""

from __future__ import annotations

import math

import numpy as np
import scipy.fft as sfft
import xarray as xr

DOMAIN = 2 * math.pi


class _Grid:
    """Wavenumbers, 2/3 mask and the spectral operators of an N x N periodic grid."""

    def __init__(self, n: int):
        self.n = n
        self.ky = np.fft.fftfreq(n, 1.0 / n)[:, None]
        self.kx = np.fft.rfftfreq(n, 1.0 / n)[None, :]
        k2 = self.kx**2 + self.ky**2
        self.k2 = k2
        self.inv_k2 = np.where(k2 > 0, 1.0 / np.where(k2 > 0, k2, 1.0), 0.0)
        self.dealias = (np.abs(self.kx) < n / 3) & (np.abs(self.ky) < n / 3)
        self.x = np.arange(n) * DOMAIN / n

    def velocity_hat(self, w_hat: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        psi = w_hat * self.inv_k2
        return 1j * self.ky * psi, -1j * self.kx * psi

    def irfft(self, a: np.ndarray) -> np.ndarray:
        return sfft.irfft2(a, s=(self.n, self.n), workers=1)


def velocity(omega: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(u, v) of a periodic vorticity field (..., N, N) on [0, 2 pi)^2.

    Spectral, with zero mean flow; the Nyquist modes (|kx| or |ky| = N / 2, whose derivative is
    not real) are dropped.
    """
    omega = np.asarray(omega, dtype=np.float64)
    grid = _Grid(omega.shape[-1])
    nyquist = (np.abs(grid.kx) == grid.n // 2) | (np.abs(grid.ky) == grid.n // 2)
    u_hat, v_hat = grid.velocity_hat(sfft.rfft2(omega, workers=1) * ~nyquist)
    return grid.irfft(u_hat), grid.irfft(v_hat)


def _truncate(w_hat: np.ndarray, n: int, m: int) -> np.ndarray:
    """Real field of size m from the rfft2 modes of a size-n field, keeping |kx|, |ky| < m / 2."""
    h = m // 2
    out = np.zeros((m, h + 1), complex)
    out[:h, :h] = w_hat[:h, :h]
    out[m - h + 1:, :h] = w_hat[n - h + 1:, :h]
    return sfft.irfft2(out, s=(m, m), workers=1) * (m / n) ** 2


def kolmogorov(n: int, resolution: int = 64, re: float = 1000.0, *, seed: int = 0, spinup: float = 20.0,
               interval: float = 0.5, drag: float = 0.1, forcing: float = 1.0, forcing_wavenumber: int = 4,
               solver_resolution: int | None = None, cfl: float = 0.5) -> xr.Dataset:
    """``n`` vorticity snapshots of one Kolmogorov-flow trajectory, ``interval`` time units apart,
    after ``spinup`` time units from a seeded random initial field.

    Returns a Dataset with ``vorticity(time, y, x)`` (float32, ``resolution``^2) on [0, 2 pi)^2
    and the parameters as attributes. Same arguments, same numbers.
    """
    m = int(resolution)
    big = int(solver_resolution or 2 * m)
    if m < 8 or big < m or big % 2 or m % 2 or n < 1 or interval <= 0 or spinup < 0:
        raise ValueError("need n >= 1, even resolution >= 8, even solver_resolution >= resolution, interval > 0")
    g = _Grid(big)
    nu = 1.0 / re
    f_hat = sfft.rfft2(np.broadcast_to(-forcing * forcing_wavenumber * np.cos(forcing_wavenumber * g.x)[:, None],
                                       (big, big)), workers=1)
    lin = -nu * g.k2 - drag

    def rhs(w_hat: np.ndarray) -> np.ndarray:
        u_hat, v_hat = g.velocity_hat(w_hat)
        u, v, wx, wy = (g.irfft(a) for a in (u_hat, v_hat, 1j * g.kx * w_hat, 1j * g.ky * w_hat))
        return -sfft.rfft2(u * wx + v * wy, workers=1) * g.dealias + f_hat

    def advance(w_hat: np.ndarray, duration: float) -> np.ndarray:
        u_hat, v_hat = g.velocity_hat(w_hat)
        speed = float(np.max(np.abs(g.irfft(u_hat)) + np.abs(g.irfft(v_hat))))
        steps = max(1, math.ceil(duration / (cfl * (DOMAIN / big) / max(speed, 1e-12))))
        dt = duration / steps
        e1, e2 = np.exp(lin * dt / 2), np.exp(lin * dt)
        for _ in range(steps):
            a = rhs(w_hat)
            b = rhs(e1 * (w_hat + dt / 2 * a))
            c = rhs(e1 * w_hat + dt / 2 * b)
            d = rhs(e2 * w_hat + dt * e1 * c)
            w_hat = e2 * w_hat + dt / 6 * (e2 * a + 2 * e1 * (b + c) + d)
        return w_hat

    rng = np.random.default_rng(seed)
    k = np.sqrt(g.k2)
    w_hat = sfft.rfft2(rng.standard_normal((big, big)), workers=1) * ((k >= 1) & (k <= 8)) * g.dealias
    w_hat *= 2.0 / max(float(np.sqrt(np.mean(g.irfft(w_hat) ** 2))), 1e-12)  # initial rms vorticity 2
    w_hat = advance(w_hat, spinup) if spinup > 0 else w_hat
    snaps = []
    for i in range(n):
        if i:
            w_hat = advance(w_hat, interval)
        snaps.append(_truncate(w_hat, big, m))
    coords = {"time": spinup + interval * np.arange(n), "y": np.arange(m) * DOMAIN / m, "x": np.arange(m) * DOMAIN / m}
    attrs = dict(re=float(re), drag=float(drag), forcing=f"{forcing} * sin({forcing_wavenumber} y) on u",
                 solver_resolution=big, seed=int(seed), spinup=float(spinup), interval=float(interval), cfl=float(cfl))
    da = xr.DataArray(np.stack(snaps).astype(np.float32), coords, ("time", "y", "x"), name="vorticity",
                      attrs={"long_name": "vorticity d(v)/dx - d(u)/dy", "units": "1 (domain 2 pi, forcing amplitude 1)"})
    return xr.Dataset({"vorticity": da}, attrs=attrs)
