"""Times the official Lag-Llama predictor at a given predictor batch (run by its own Python).

    OFFICIAL_PYTHON official_predict.py N_SERIES PREDICTOR_BATCH

Run from a folder holding ``common.py`` of ``../shared/official_bench``, ``calibration.py``
of this folder and the official checkout as ``src/`` (``benchmarks/official_arch_speed.py
--official-src`` lays it out). It is that folder's ``bench_predict.py`` with the predictor
batch as a parameter: KV cache on, the released architecture, random weights, the first N
m4_hourly series, one window. Prints one ``RESULT`` line.
"""

import sys
import time

import numpy as np
from calibration import gflops
from common import load, make_estimator, seed_all

n, batch = int(sys.argv[1]), int(sys.argv[2])
_, instances = load()
inputs = list(instances.input)[:n]
estimator = make_estimator(batch_size=batch)
seed_all(0)
module = estimator.create_lightning_module(use_kv_cache=True)
predictor = estimator.create_predictor(estimator.create_transformation(), module)
seed_all(1)
list(predictor.predict(inputs[:1]))  # warm-up
calibration = gflops()
seed_all(123)
start = time.perf_counter()
forecasts = list(predictor.predict(inputs))
seconds = time.perf_counter() - start
samples = np.stack([f.samples for f in forecasts])
print(
    f"RESULT n={n} batch={predictor.batch_size} seconds={seconds:.3f} per_series={seconds / n:.4f} "
    f"samples_shape={samples.shape[1:]} calib_gflops={calibration}",
    flush=True,
)
