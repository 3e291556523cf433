#!/usr/bin/env python3
"""Convert an authors' PFGM checkpoint (.pth, github.com/Newbeeer/Poisson_flow) to the HDF5
parameter layout that pfgm loads (docs/model.md, "Parameter files").

The authors' run_lib.py saves a checkpoint as

    {'optimizer': ..., 'model': model.state_dict(), 'ema': ema.state_dict(), 'step': int}

where the model is wrapped in torch.nn.DataParallel, so its state_dict keys read
'module.all_modules.<i>.<layer>.<weight|bias|W|b>' (plus the unused buffer 'module.sigmas'),
and the EMA state is {'decay', 'num_updates', 'shadow_params': [tensor, ...]} with one tensor
per parameter that requires grad, in model.parameters() order (models/ema.py). The fixed
Gaussian Fourier weights 'all_modules.0.W' of a Fourier-embedding model require no grad, so the
EMA has no copy of them and the model's own value is used.

Output (float32):
    /params/<name>     the chosen weights (--weights ema, the default, is what the authors
                       sample with; --weights model takes the raw training weights)
    /ema/<name>        also written with --weights both (then /params holds the model weights)
    root attributes    format = "pfgm-params", param_order (names in construction order),
                       param_count, weights, source, step (when the checkpoint has one)
The file is written under a temporary name and renamed when complete.

Usage:
    python3 launch/pth_to_h5.py checkpoint_26.pth cifar10_ddpmpp_ema.h5
    python3 launch/pth_to_h5.py checkpoint_26.pth out.h5 --weights both
Then, with the matching config (e.g. configs/cifar10_ddpmpp.yaml), the C network loads it by
name (pfgm_ddpmpp_load_h5); a missing, extra or mis-shaped name is reported with the dataset.

Requires: numpy, h5py, and torch to read the .pth (the conversion itself, convert(), works on
any mapping of array-likes and does not import torch).
"""
import argparse
import os
import sys
from collections import OrderedDict

import numpy as np

FOURIER_W = "all_modules.0.W"  # GaussianFourierProjection.W: requires_grad=False


def to_numpy(t):
    """A CPU numpy copy of a torch tensor or any array-like."""
    if hasattr(t, "detach"):
        t = t.detach().cpu()
        if hasattr(t, "float") and str(getattr(t, "dtype", "")) in ("torch.bfloat16", "torch.float16"):
            t = t.float()
        return t.numpy()
    return np.asarray(t)


def strip_prefix(state):
    """Drops DataParallel's 'module.' prefix (keys without it are kept as they are)."""
    out = OrderedDict()
    for k, v in state.items():
        out[k[len("module."):] if k.startswith("module.") else k] = v
    return out


def model_parameters(state):
    """The network's parameters in state_dict (= construction) order: every all_modules.*
    entry. Buffers (the unused 'sigmas') are not parameters and are dropped."""
    params = OrderedDict()
    for k, v in strip_prefix(state).items():
        if k.startswith("all_modules."):
            params[k] = to_numpy(v).astype(np.float32)
    if not params:
        raise ValueError("the state_dict has no 'all_modules.*' entries: not an NCSNpp/DDPM++ model")
    return params


def trainable_names(params):
    """Names whose parameters require grad: all but the fixed Fourier W (1-D, module 0)."""
    return [k for k, v in params.items() if not (k == FOURIER_W and v.ndim == 1)]


def ema_parameters(ema_state, params):
    """The EMA weights by name: shadow_params mapped onto the trainable names in order, the
    fixed Fourier W (if any) taken from the model."""
    shadow = ema_state.get("shadow_params") if isinstance(ema_state, dict) else None
    if shadow is None:
        raise ValueError("the 'ema' entry has no 'shadow_params' list (models/ema.py state_dict)")
    names = trainable_names(params)
    if len(shadow) != len(names):
        raise ValueError(
            f"the EMA holds {len(shadow)} tensors but the model has {len(names)} trainable parameters"
        )
    out = OrderedDict()
    it = iter(shadow)
    for k, v in params.items():
        if k in names:
            s = to_numpy(next(it)).astype(np.float32)
            if s.shape != v.shape:
                raise ValueError(f"EMA tensor for {k} has shape {s.shape}, the model's is {v.shape}")
            out[k] = s
        else:
            out[k] = v
    return out


def convert(ckpt, weights="ema"):
    """Returns ({group: OrderedDict(name -> float32 array)}, attributes) for a loaded
    checkpoint mapping. weights: 'ema', 'model' or 'both'."""
    if "model" not in ckpt:
        raise ValueError("no 'model' entry: expected the authors' checkpoint {'model', 'ema', 'optimizer', 'step'}")
    params = model_parameters(ckpt["model"])
    groups = OrderedDict()
    if weights == "model":
        groups["params"] = params
    elif weights == "ema":
        groups["params"] = ema_parameters(ckpt.get("ema"), params)
    elif weights == "both":
        groups["params"] = params
        groups["ema"] = ema_parameters(ckpt.get("ema"), params)
    else:
        raise ValueError(f"--weights must be ema, model or both, not {weights!r}")
    attrs = {
        "format": "pfgm-params",
        "param_order": list(params.keys()),
        "param_count": int(sum(v.size for v in params.values())),
        "weights": weights,
    }
    if "step" in ckpt:
        attrs["step"] = int(ckpt["step"])
    ema = ckpt.get("ema")
    if isinstance(ema, dict):
        if ema.get("decay") is not None:
            attrs["ema_decay"] = float(ema["decay"])
        if ema.get("num_updates") is not None:
            attrs["ema_num_updates"] = int(ema["num_updates"])
    return groups, attrs


def write_h5(path, groups, attrs, source):
    import h5py

    tmp = f"{path}.tmp.{os.getpid()}"
    try:
        with h5py.File(tmp, "w") as f:
            for g, tensors in groups.items():
                grp = f.create_group(g)
                for name, v in tensors.items():
                    grp.create_dataset(name, data=v, dtype=np.float32)
            str_t = h5py.string_dtype(encoding="utf-8")
            for k, v in attrs.items():
                if isinstance(v, list):
                    f.attrs.create(k, v, dtype=str_t)
                elif isinstance(v, str):
                    f.attrs.create(k, v, dtype=str_t)
                else:
                    f.attrs[k] = v
            f.attrs.create("source", os.path.basename(source), dtype=str_t)
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise


def load_pth(path, trust):
    import torch

    try:
        return torch.load(path, map_location="cpu", weights_only=not trust)
    except TypeError:  # torch older than 1.13 has no weights_only
        return torch.load(path, map_location="cpu")
    except Exception as e:  # noqa: BLE001 - re-raised with the hint
        if trust:
            raise
        raise RuntimeError(
            f"{path}: torch.load(weights_only=True) refused it ({e}); "
            "---> HINT: if you trust the file, pass --trust-checkpoint"
        ) from e


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("checkpoint", help="authors' checkpoint .pth (keys model/ema/step)")
    ap.add_argument("output", help="HDF5 file to write")
    ap.add_argument("--weights", choices=["ema", "model", "both"], default="ema",
                    help="which weights go to /params (both: model to /params, EMA to /ema)")
    ap.add_argument("--trust-checkpoint", action="store_true",
                    help="allow torch.load to unpickle arbitrary objects (only for files you trust)")
    a = ap.parse_args(argv)
    try:
        ckpt = load_pth(a.checkpoint, a.trust_checkpoint)
        groups, attrs = convert(ckpt, a.weights)
        write_h5(a.output, groups, attrs, a.checkpoint)
    except (OSError, ValueError, RuntimeError, KeyError) as e:
        print(f"pth_to_h5: {e}", file=sys.stderr)
        return 1
    n = len(attrs["param_order"])
    print(f"{a.output}: {n} tensors, {attrs['param_count']:,} parameters, weights={a.weights}"
          + (f", step {attrs['step']}" if "step" in attrs else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
