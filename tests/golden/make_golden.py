"""Write the golden streams of tests/test_golden.py (run by hand, only when a format changes on purpose).

    python tests/golden/make_golden.py

Each case is a small stream that exercises one decoder path; ``SHA256SUMS`` records the sha256 of
the array each stream decodes to (dtype, shape and bytes), so that any later change that decodes
one of them differently, on any machine, fails the tests.  Existing streams are never rewritten:
a new format gets new files next to the old ones.
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent


def decoded_digest(y: np.ndarray) -> str:
    """sha256 over the dtype, the shape and the C-order bytes of a decoded array."""
    h = hashlib.sha256(f"{np.asarray(y).dtype.str}{tuple(np.shape(y))}".encode())
    h.update(np.ascontiguousarray(y).tobytes())
    return h.hexdigest()


class GoldenModel:
    """A numpy-only predictor for the golden L2+model stream (a network's output differs across machines by
    rounding, so its decoded bytes could not be pinned): each 4 x 16 x 16 block is ``c + a * T`` for a fixed
    +-1 texture T, with two float32 numbers per block.  Payload: one u8 use flag per block, then the
    used blocks' (c, a)."""

    model_id = "golden-stand-in"
    sha256 = "5" * 64
    max_abs_deviation = 1e-5
    block = (4, 16, 16)
    texture = np.where(np.arange(4 * 16 * 16).reshape(block) * 2654435761 % 7 < 3, -1.0, 1.0)

    def block_slices(self, shape):
        return [(slice(t, t + 4), slice(i, i + 16), slice(j, j + 16)) for t in range(0, shape[0], 4)
                for i in range(0, shape[1], 16) for j in range(0, shape[2], 16)]

    def analyse(self, x, missing, steps):
        from types import SimpleNamespace

        params, ranges = [], []
        p = self.texture.ravel() - self.texture.mean()
        for region in self.block_slices(x.shape):
            b = x[region].ravel()
            a = float(np.dot(b - b.mean(), p) / np.dot(p, p))
            params.append((b.mean() - a * self.texture.mean(), a))
            ranges.append(float(np.ptp(b)))
        params = np.array(params, np.float32)
        x_hat = self.reconstruct(self._pack(params, np.ones(len(params), bool)), x.shape)
        return SimpleNamespace(x_hat=x_hat, block_bytes=[8] * len(params), block_ranges=np.array(ranges),
                               params=params)

    @staticmethod
    def _pack(params, use):
        return np.asarray(use, np.uint8).tobytes() + params[np.asarray(use)].astype("<f4").tobytes()

    def pack(self, analysis, use):
        return self._pack(analysis.params, use)

    def used_blocks(self, payload, shape):
        return np.frombuffer(payload[: len(self.block_slices(shape))], np.uint8).astype(bool)

    def reconstruct(self, payload, shape):
        regions = self.block_slices(shape)
        params = np.frombuffer(payload[len(regions):], "<f4").reshape(-1, 2).astype(np.float64)
        out = np.zeros(shape)
        for (c, a), region in zip(params, [r for r, u in zip(regions, self.used_blocks(payload, shape)) if u]):
            out[region] = c + a * self.texture
        return out


def golden_model(name: str):
    """The model a golden stream needs (None for all but the ``l2_model`` ones)."""
    return GoldenModel() if name.startswith("l2_model") else None


#: The archive climatology the ``ref`` stream is coded against (written once, with it).
REFERENCE = HERE / "ref.xdcl"


def golden_reference(name: str):
    """The archive climatology a golden stream needs (None for all but ``ref``)."""
    from xdiffc.archive_climatology import Climatology

    if not name.startswith("ref"):
        return None
    if not REFERENCE.exists():  # written with the stream, never rewritten
        rng = np.random.default_rng(12)
        yy, xx = np.meshgrid(np.linspace(0, 3, 24), np.linspace(0, 5, 32), indexing="ij")
        means = np.sin(yy * xx)[None] * 10 + np.cos(np.arange(12) / 12 * 2 * np.pi)[:, None, None] * 5
        REFERENCE.write_bytes(Climatology.build(means + rng.normal(size=means.shape) * 0.01, 0.05).blob)
    return Climatology(REFERENCE.read_bytes())


def decode_golden(name: str, blob: bytes) -> np.ndarray:
    """A golden stream decoded with what it needs."""
    import xdiffc

    return xdiffc.decompress(blob, model=golden_model(name), reference=golden_reference(name))


def cases() -> dict[str, bytes]:
    import xdiffc
    from xdiffc import guarantee
    from xdiffc.bitstream import Header, Stream
    from xdiffc.coders import interp, sz3

    rng = np.random.default_rng(2026)
    t = np.linspace(0, 1, 4 * 48 * 64).reshape(4, 48, 64)
    smooth = (np.sin(t * 25) * 10 + rng.normal(size=t.shape).cumsum(-1) * 0.05).astype(np.float32)
    out = {}
    # interp with rANS, and the same field forced to zstd (both v1 payloads)
    for coder, name in ((interp.CODER_ANS, "interp_rans"), (interp.CODER_ZSTD, "interp_zstd")):
        tol = 0.02
        payload, recon = interp.encode_reconstruct(smooth, tol, coder=coder)
        y = recon.astype(np.float32)
        sections = {"interp": payload}
        bad = guarantee.violations(smooth, y, tol, None)
        if bad.size:
            sections["exc"] = guarantee.encode_exceptions(smooth, bad)
        head = Header(dtype="<f4", shape=smooth.shape, order="C", mode="pointwise", tol=tol)
        out[name] = Stream(head, sections).to_bytes()
    # version 3 (context rANS, compact tables), forced on the same field, and chosen by the encoder on a masked
    # field whose residuals repeat from step to step (interp_v2*.xdfc: the same cases written as version 2, with
    # explicit tables, by the release before)
    payload, recon = interp.encode_reconstruct(smooth, 0.02, coder=interp.CODER_CTX)
    sections = {"interp": payload}
    bad = guarantee.violations(smooth, recon.astype(np.float32), 0.02, None)
    if bad.size:
        sections["exc"] = guarantee.encode_exceptions(smooth, bad)
    out["interp_v3"] = Stream(Header(dtype="<f4", shape=smooth.shape, order="C", mode="pointwise", tol=0.02),
                              sections).to_bytes()
    # version 4: a float32 reconstruction, around a version 3 payload and around version 1's zstd body
    for coder, name in ((interp.CODER_CTX, "interp_v4"), (interp.CODER_ZSTD, "interp_v4_zstd")):
        payload, recon = interp.encode_reconstruct(smooth, 0.02, coder=coder, dtype=np.float32)
        assert payload[0] == interp.VERSION_F32 and recon.dtype == np.float32
        sections = {"interp": payload}
        bad = guarantee.violations(smooth, recon, 0.02, None)
        if bad.size:
            sections["exc"] = guarantee.encode_exceptions(smooth, bad)
        out[name] = Stream(Header(dtype="<f4", shape=smooth.shape, order="C", mode="pointwise", tol=0.02),
                           sections).to_bytes()
    # the temporal decomposition with float32 anomalies (its anomalies' interp payload in version 4)
    crng = np.random.default_rng(4)
    cycle = smooth[:, :20, :24] * 3 + 250
    seasons = (cycle[np.arange(16) % 4] + crng.normal(size=(16, 20, 24)).cumsum(-1) * 0.05).astype(np.float32)
    out["anomaly_v4"] = xdiffc.compress(seasons, tol=0.05)
    yy, xx = np.meshgrid(np.linspace(0, 7, 40), np.linspace(0, 9, 56), indexing="ij")
    rep = (np.sin(yy * xx) * 5 + np.cos(3 * xx))[None] + rng.normal(size=(12, 1, 1)) * 0.3
    rep = (rep + rng.normal(size=rep.shape) * 0.01).astype(np.float32)
    rep[:, 10:14, 20:30] = 1e20
    rep[3, 0, :5] = np.nan
    out["interp_v3_mask"] = xdiffc.compress(rep, tol=0.01, fill_values=[1e20])
    # SZ3 with an exception section (exact values at every 97th point)
    x64 = np.sin(t[:2] * 20) * 100 + rng.normal(size=t[:2].shape) * 0.01
    sections = {"sz3": sz3.encode(x64, 1e-3), "exc": guarantee.encode_exceptions(x64, np.arange(0, x64.size, 97))}
    out["sz3_exc"] = Stream(Header(dtype="<f8", shape=x64.shape, tol=1e-3), sections).to_bytes()
    out["sz3_v2"] = Stream(Header(dtype="<f8", shape=x64.shape, tol=1e-3), {"sz3": sz3.encode(x64, 1e-3)}).to_bytes()
    # missing values (NaN, inf, a fill value) in Fortran order
    m = np.asfortranarray(smooth[:2, :20, :24].copy())
    m[0, 0, :4] = [np.nan, 1e20, -np.inf, np.nan]
    m[1, 5:9, 3:7] = 1e20
    out["mask"] = xdiffc.compress(m, tol=0.05, fill_values=[1e20])
    # the L2 mode (pca section version 2)
    out["l2"] = xdiffc.compress(smooth[:2].astype(np.float64), nrmse=1e-3, mode="l2")
    # the L2 mode with a model base on some blocks (the model section, the interpolation base skipping its blocks)
    g = GoldenModel()
    tex = np.tile(g.texture, (2, 3, 4)) * np.kron(rng.uniform(2, 6, size=(2, 3, 4)).round(0), np.ones(g.block))
    tex = (tex + rng.normal(size=tex.shape) * 0.02).astype(np.float32)
    tex[:4, :16, :32] = smooth[:, :16, :32]  # blocks without the texture: the interpolation base
    tex[1, :3, :5] = np.nan
    out["l2_model"] = xdiffc.compress(tex, nrmse=1e-3, mode="l2", model=g)
    # the wavelet coder, forced: packet decomposition, raw bits, corrections (the decoder's arithmetic pinned);
    # version 2, compact tables (wavelet.xdfc: the same case as version 1, explicit tables)
    from xdiffc.coders import wavelet

    wrng = np.random.default_rng(15)
    series = (smooth[:, :24, :40] + wrng.normal(size=(4, 1, 1)) * np.sin(np.arange(40) / 5.0)).astype(np.float32)
    series = np.concatenate([series, series[::-1] * 0.9 + 1.0])
    payload, recon = wavelet.encode_reconstruct(series, 0.05)
    sections = {"wavelet": payload}
    bad = guarantee.violations(series, recon.astype(np.float32), 0.05, None)
    if bad.size:
        sections["exc"] = guarantee.encode_exceptions(series, bad)
    out["wavelet_v2"] = Stream(Header(dtype="<f4", shape=series.shape, order="C", mode="pointwise", tol=0.05),
                            sections).to_bytes()
    # context-coded bitmaps: a coastline mask over four steps, kept zeros and the signs of a pointwise-relative
    # bound (the 'mask', 'zeros' and 'log2' sections; mask.xdfc has the zstd form)
    yy, xx = np.meshgrid(np.arange(40), np.arange(56), indexing="ij")
    land = (yy - 20) ** 2 + (xx - 30) ** 2 < 120 + 40 * np.sin(xx / 3.0)
    coast = (smooth[:, :40, :56] - 1.5).astype(np.float32)
    coast[:, land] = 1e20
    coast[:, :3, :] = 0.0
    out["bitmap"] = xdiffc.compress(coast, pw_rel_tol=1e-2, fill_values=[1e20])
    # a chunk coded against the archive climatology (the 'ref' section: its sha256 and the chunk's phase, 5)
    ref = golden_reference("ref")
    crng = np.random.default_rng(13)
    chunk = ref.values[(np.arange(10) + 5) % 12] + crng.normal(size=(10, 24, 32)).cumsum(-1) * 0.02
    out["ref"] = xdiffc.compress(chunk.astype(np.float32), tol=0.05, reference=ref)
    # a linear ramp that interp codes in a few bytes: the 'pad' section brings it up to the size rule
    ramp = np.arange(64)[:, None, None] * 0.5 + np.arange(256)[None, :, None] * 0.25 + np.arange(256)[None, None, :]
    out["pad"] = xdiffc.compress(ramp.astype(np.float32), tol=0.01)
    # exact storage of an integer array
    out["lossless"] = xdiffc.compress(rng.integers(-1000, 1000, size=(5, 7, 9)).astype(np.int16), tol=0)
    return out


def main() -> None:
    import xdiffc

    sums = HERE / "SHA256SUMS"
    known = dict(line.split()[::-1] for line in sums.read_text().splitlines()) if sums.exists() else {}
    for name, blob in cases().items():
        path = HERE / f"{name}.xdfc"
        if path.name in known:
            print(f"keep {path.name}", file=sys.stderr)
            continue
        path.write_bytes(blob)
        known[path.name] = decoded_digest(decode_golden(name, blob))
        print(f"wrote {path.name} ({len(blob)} bytes)", file=sys.stderr)
    sums.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(known.items())))


if __name__ == "__main__":
    main()
