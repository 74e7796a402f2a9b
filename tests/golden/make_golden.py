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
    # version 2 (context rANS), forced on the same field, and chosen by the encoder on a masked field whose
    # residuals repeat from step to step
    payload, recon = interp.encode_reconstruct(smooth, 0.02, coder=interp.CODER_CTX)
    sections = {"interp": payload}
    bad = guarantee.violations(smooth, recon.astype(np.float32), 0.02, None)
    if bad.size:
        sections["exc"] = guarantee.encode_exceptions(smooth, bad)
    out["interp_v2"] = Stream(Header(dtype="<f4", shape=smooth.shape, order="C", mode="pointwise", tol=0.02),
                              sections).to_bytes()
    yy, xx = np.meshgrid(np.linspace(0, 7, 40), np.linspace(0, 9, 56), indexing="ij")
    rep = (np.sin(yy * xx) * 5 + np.cos(3 * xx))[None] + rng.normal(size=(12, 1, 1)) * 0.3
    rep = (rep + rng.normal(size=rep.shape) * 0.01).astype(np.float32)
    rep[:, 10:14, 20:30] = 1e20
    rep[3, 0, :5] = np.nan
    out["interp_v2_mask"] = xdiffc.compress(rep, tol=0.01, fill_values=[1e20])
    # SZ3 with an exception section (exact values at every 97th point)
    x64 = np.sin(t[:2] * 20) * 100 + rng.normal(size=t[:2].shape) * 0.01
    sections = {"sz3": sz3.encode(x64, 1e-3), "exc": guarantee.encode_exceptions(x64, np.arange(0, x64.size, 97))}
    out["sz3_exc"] = Stream(Header(dtype="<f8", shape=x64.shape, tol=1e-3), sections).to_bytes()
    # missing values (NaN, inf, a fill value) in Fortran order
    m = np.asfortranarray(smooth[:2, :20, :24].copy())
    m[0, 0, :4] = [np.nan, 1e20, -np.inf, np.nan]
    m[1, 5:9, 3:7] = 1e20
    out["mask"] = xdiffc.compress(m, tol=0.05, fill_values=[1e20])
    # the L2 mode (pca section version 2)
    out["l2"] = xdiffc.compress(smooth[:2].astype(np.float64), nrmse=1e-3, mode="l2")
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
        known[path.name] = decoded_digest(xdiffc.decompress(blob))
        print(f"wrote {path.name} ({len(blob)} bytes)", file=sys.stderr)
    sums.write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(known.items())))


if __name__ == "__main__":
    main()
