"""Device, precision and seeding helpers shared by the estimators."""

import contextlib
import platform

import numpy as np
import torch

NO_CUDA = (
    "device={device!r} was requested but PyTorch sees no CUDA GPU "
    "(torch.cuda.is_available() is False). Use device='auto' to take the GPU "
    "when there is one and the CPU otherwise, or device='cpu'."
)
BAD_DEVICE = "device={device!r} is not a torch device string ('auto', 'cpu', 'cuda', 'cuda:1', ...)."
BAD_PRECISION = "precision={precision!r} is not one of 'auto', 'bf16', 'fp32'."
NO_BF16 = (
    "precision='bf16' was requested but {device} does not run bfloat16 (on a CPU: no "
    "AVX512-BF16 or AMX); "
    "use precision='auto' (bf16 where supported) or 'fp32'."
)


def resolve_device(device):
    """Map ``'auto'`` to ``'cuda'`` or ``'cpu'``; fail early on an absent GPU.

    Parameters
    ----------
    device : str, torch.device or None

    Returns
    -------
    str or None
        None is passed through (skorch then moves nothing).
    """
    if device is None:
        return None
    if str(device) == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError) as exc:
        raise ValueError(BAD_DEVICE.format(device=device)) from exc
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(NO_CUDA.format(device=device))
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ValueError(
                f"device={device!r}: only {torch.cuda.device_count()} CUDA device(s) exist."
            )
    return str(device)


def bf16_supported(device, emulated=False):
    """Whether bfloat16 autocast runs at hardware speed on ``device`` (with
    ``emulated``: whether it runs at all). On an x86 CPU, hardware speed
    needs AVX512-BF16 or AMX; oneDNN emulates bf16 on other AVX-512 CPUs."""
    dev = torch.device(device or "cpu")
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            return False
        if torch.version.hip or emulated:
            return torch.cuda.is_bf16_supported()
        # NVIDIA GPUs run bf16 in hardware from Ampere (compute capability 8.0);
        # older ones only emulate it, slower than fp32.
        index = dev.index if dev.index is not None else torch.cuda.current_device()
        return torch.cuda.get_device_capability(index)[0] >= 8
    if dev.type == "cpu":
        try:
            # oneDNN runs bf16 on any AVX-512 CPU, but emulated (slower than
            # fp32) without AVX512-BF16 or AMX, which x86 CPUs are asked for.
            runs = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        except (AttributeError, RuntimeError):
            return False
        native = [getattr(torch.cpu, name, None) for name in
                  ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
        if emulated or platform.machine().lower() not in ("x86_64", "amd64") or None in native:
            return runs
        return runs and any(check() for check in native)
    return False


def resolve_precision(precision, device):
    """Return the autocast dtype (``torch.bfloat16``) or None for fp32."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(BAD_PRECISION.format(precision=precision))
    if precision == "fp32":
        return None
    if precision == "bf16":  # asked for: also where a GPU only emulates it
        if not bf16_supported(device, emulated=True):
            raise ValueError(NO_BF16.format(device=device))
        return torch.bfloat16
    return torch.bfloat16 if bf16_supported(device) else None


def seed_from(random_state):
    """An int seed from an sklearn-style ``random_state`` (None -> None)."""
    if random_state is None:
        return None
    if isinstance(random_state, np.random.RandomState):
        return int(random_state.randint(np.iinfo(np.int32).max))
    if isinstance(random_state, np.random.Generator):
        return int(random_state.integers(np.iinfo(np.int32).max))
    return int(random_state)


@contextlib.contextmanager
def seeded(seed, device):
    """Seed torch's global RNG inside the block and restore it afterwards.

    Weight initialisation and dropout draw from the global generator, so a fit
    is only reproducible when the block around it is seeded; forking keeps the
    caller's random stream untouched.
    """
    if seed is None:
        yield
        return
    devices = []
    if device is not None and torch.device(device).type == "cuda":
        devices = [torch.device(device).index or 0]
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def channels_last_safe(module, device):
    """Whether ``module`` may train in channels-last layout on ``device``.

    On CPU, PyTorch 2.14's oneDNN computes the weight gradient of a 1x1
    convolution with stride > 1 and fewer than 16 input channels out of
    bounds in channels-last layout (heap corruption, then a crash). Networks
    with such a layer (the downsampling shortcuts of narrow ResNets) train in
    the default layout instead; wider ones are unaffected.
    """
    if torch.device(device or "cpu").type != "cpu":
        return True
    return not any(
        isinstance(m, torch.nn.Conv2d) and m.kernel_size == (1, 1)
        and max(m.stride) > 1 and m.in_channels < 16
        for m in module.modules()
    )


def free_device_memory():
    """Return cached CUDA memory to the driver (after an out-of-memory error)."""
    import gc

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
