#!/usr/bin/env python3
"""Writes tests/fixtures/drift_rho_vectors.h5: ODE drift vectors with rho = |v_x|/sqrt(N)
above 1 (and a few below), computed with the authors' z_exp substitution exactly as their
code does it (Newbeeer/Poisson_flow, methods.py, Poisson.ode; the same drift as
sampling.py, get_rk45_sampler_pfgm; spec section 1.8):

    norm_1     = x_drift.norm(p=2, dim=1) / sqrt_dim          # float32 tensor
    x_norm     = gamma * norm_1 / (1 - norm_1)                 # no guard: < 0 for rho > 1
    x_norm     = torch.sqrt(x_norm ** 2 + z ** 2)
    z_drift    = -sqrt_dim * ones * z / (x_norm + gamma)
    dt_dz      = 1 / (z_drift + 1e-5)
    dx_dt'     = z * (x_drift * dt_dz)

Their tensors are float32 and the Python scalars (sqrt_dim, gamma, z) do not promote them,
so every step below is rounded to float32 as torch does; the norm is a float32 sum of
squares (torch's reduction order differs, a rounding-level difference the C test's
tolerance covers). The file has the layout of ../shared/testvectors/pfgm_vectors.h5's drift
groups (testvectors/README.md), so tests/field_vectors_check.h checks it unchanged:
group drift_rho_above_one, attributes N, z, gamma, z_exp; net_x [B, N], net_z_raw [B]
(replaced by the substitution), z_used [B], dx_dt_logz [B, N]; plus rho [B] (float64, for
the reader). Deterministic (fixed seed). Needs numpy and h5py:
    python3 tests/scripts/make_drift_rho_vectors.py tests/fixtures/drift_rho_vectors.h5
"""
import sys

import h5py
import numpy as np

F = np.float32
N, Z, GAMMA, Z_EXP = 784, 0.5, 5.0, 5.0
# rho per row: two below 1 (the ordinary case), the rest above 1 (the old clamp's rows).
# rho - 1 >= 0.2 keeps the float32 cancellation in 1 - rho (condition 1/|1 - rho| <= 5)
# well inside the C test's 2e-6 relative tolerance.
RHOS = [0.5, 0.9, 1.2, 1.3, 1.5, 2.0, 3.0, 10.0]


def authors_drift(x_drift, z):
    """methods.py::Poisson.ode below z_exp, float32 step by step. x_drift [B, N] float32."""
    sqrt_dim = np.sqrt(N)
    norm_1 = (np.sqrt(np.sum(x_drift * x_drift, axis=1, dtype=F), dtype=F) / F(sqrt_dim)).astype(F)
    x_norm = (F(GAMMA) * norm_1 / (F(1) - norm_1)).astype(F)
    x_norm = np.sqrt((x_norm * x_norm + F(z) * F(z)).astype(F)).astype(F)
    z_drift = (F(-sqrt_dim) * F(z) / (x_norm + F(GAMMA))).astype(F)
    dt_dz = (F(1) / (z_drift + F(1e-5))).astype(F)
    dx = (F(z) * (x_drift * dt_dz[:, None]).astype(F)).astype(F)
    return z_drift, dx, norm_1


def main(path):
    rng = np.random.default_rng(20260412)
    B = len(RHOS)
    g = rng.standard_normal((B, N))
    unit = g / np.linalg.norm(g, axis=1, keepdims=True)
    net_x = (unit * (np.array(RHOS)[:, None] * np.sqrt(N))).astype(F)
    net_z_raw = rng.uniform(-2.0, 2.0, B).astype(F)  # discarded below z_exp
    z_used, dx, norm_1 = authors_drift(net_x, Z)
    assert np.all(np.isfinite(z_used)) and np.all(np.isfinite(dx))
    with h5py.File(path, "w") as f:
        f.attrs["note"] = ("pfgm tests/scripts/make_drift_rho_vectors.py: the authors' z_exp "
                           "substitution (methods.py Poisson.ode) in float32, rho above 1 included")
        grp = f.create_group("drift_rho_above_one")
        for k, v in (("N", N), ("z", Z), ("gamma", GAMMA), ("z_exp", Z_EXP)):
            grp.attrs[k] = v
        grp.create_dataset("net_x", data=net_x)
        grp.create_dataset("net_z_raw", data=net_z_raw)
        grp.create_dataset("z_used", data=z_used)
        grp.create_dataset("dx_dt_logz", data=dx)
        grp.create_dataset("rho", data=np.linalg.norm(net_x.astype(np.float64), axis=1) / np.sqrt(N))
    for r, n1, v in zip(RHOS, norm_1, z_used):
        print(f"rho {r:5.2f} (float32 {n1:.7f}): v_z = {v:.7g}")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/drift_rho_vectors.h5")
