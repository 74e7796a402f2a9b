"""DSSIM per variable at fixed bounds, and what suggest_tol picks, on native-grid (E3SM cubed-sphere) files.

    python benchmarks/native_acceptance.py OUT.json [DATA_DIR]

DATA_DIR (default ../shared/data from the repo root) holds the files named below (DATA_SOURCES.md);
one JSON line per variable goes to stdout, all of them to OUT.json. Results: RESULTS.md,
"Acceptance on native grids".
"""
import json
import sys
import time
from pathlib import Path

import xarray as xr

from xdiffc import metrics, tuning

D = Path(sys.argv[2]) if len(sys.argv) > 2 else Path(__file__).resolve().parents[1].parent / "shared" / "data"
FILES = {"rad_standalone_ne4_pg2.nc": ["pint", "pmid", "tmid", "tint", "rel", "rei", "lwp", "gas_vmr"],
         "homme26x3458.t.3.nc": ["T", "U", "V"],
         "ihesp14.TS.12mon.nc": ["TS"]}
out = {}
crit = metrics.Criteria()
for f, names in FILES.items():
    ds = xr.open_dataset(D / f, decode_times=False)
    for n in names:
        t0 = time.time()
        vs = tuning.sample_variable(ds, n)
        run = tuning.xdiffc_compressor(vs.fill_values, vs.coded_layout)
        span = tuning.value_range(vs.blocks)
        d = {}
        for eps in (1e-5, 1e-4, 1e-3):
            tr = tuning.evaluate(vs.blocks, run, eps * span, crit, vs.native).completed()
            d[f"{eps:g}"] = {k: tr.metrics[k] for k in ("dssim", "pcc", "ks_p", "spre_pct")} | {"ratio": tr.ratio}
        s = tuning.suggest_tol(ds, variables=[n])
        row = s.table.loc[n]
        d["tune"] = {k: (row[k].item() if hasattr(row[k], "item") else row[k]) for k in
                     ("kind", "tol", "pw_rel_tol", "ratio", "binding", "dssim", "ks_p", "spre_pct")}
        d["seconds"] = time.time() - t0
        out[f"{f}:{n}"] = d
        print(f, n, json.dumps(d), flush=True)
json.dump(out, open(sys.argv[1], "w"), indent=1, default=str)
