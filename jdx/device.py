"""Where the work runs: the device, its label for a report, bf16 autocast where it pays, and how many CPU
threads to use. Its own module so that an app can pick a device without importing the trainer."""
from __future__ import annotations

import os
import platform

import torch


def pick_device(name: str = "auto") -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but PyTorch sees no CUDA GPU")
    if name == "mps" and not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
        raise RuntimeError("--device mps asked for, but PyTorch sees no Apple GPU")
    return torch.device(name)


def device_name(device: torch.device) -> str:
    """'cpu', 'mps' or 'cuda (NVIDIA H100 …)': the label stored with every measured figure."""
    if device.type == "cuda":
        return f"cuda ({torch.cuda.get_device_name(device)})"
    return device.type


def device_label(device: torch.device, threads: int | None = None) -> str:
    """The device in words for a page or a benchmark table: 'GPU (NVIDIA H100 …)', 'Apple GPU (mps)',
    'CPU (x86_64, 2 threads)'; threads defaults to torch's current count."""
    if device.type == "cuda":
        return f"GPU ({torch.cuda.get_device_name(device)})"
    if device.type == "mps":
        return "Apple GPU (mps)"
    n = torch.get_num_threads() if threads is None else threads
    return f"CPU ({platform.machine() or 'cpu'}, {n} thread{'s' if n != 1 else ''} of {os.cpu_count()} cores)"


def cpu_has_bf16() -> bool:
    """bf16 pays on CPUs with AVX-512 (BF16) or AMX; on AVX2-only CPUs PyTorch falls back to a slow
    convolution and a bf16 step ran 10× slower than fp32 (measured on this project's AVX2 EPYC machine)."""
    cap = torch.backends.cpu.get_cpu_capability()
    return cap.startswith("AVX512") or "AMX" in cap


def autocast(device: torch.device, enabled: bool):
    """bf16 autocast on CUDA, and on CPUs where it is faster than fp32; off elsewhere."""
    on = enabled and (device.type == "cuda" or (device.type == "cpu" and cpu_has_bf16()))
    return torch.autocast(device.type, dtype=torch.bfloat16, enabled=on)


def usable_cores() -> int:
    """Cores this process may run on (its CPU affinity, e.g. a container's quota of cores)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def cpu_threads(requested: int | None = None) -> int:
    """PyTorch CPU threads for one command: `requested` (--threads) or $JDX_THREADS if set; else the cores
    that other processes leave idle (usable cores − the 1-minute load average), at least 1.

    Why not torch's default (every core): OpenMP threads spin-wait on each other, so when another process
    holds a core, a team as wide as the machine waits on its slowest member. `jdx sample --n 40` took 262 s
    with 2 threads beside one busy process on 2 cores and 39 s with 1 thread (byte-identical output)."""
    if requested is None and os.environ.get("JDX_THREADS"):
        requested = int(os.environ["JDX_THREADS"])
    if requested is not None:
        if requested < 1:
            raise ValueError(f"thread count must be at least 1, not {requested}")
        return requested
    cores = usable_cores()
    try:
        busy = os.getloadavg()[0]
    except (AttributeError, OSError):
        busy = 0.0
    return max(1, min(cores, int(cores - busy + 0.5)))
