"""Which device a Ray worker should compute on: the GPUs Ray assigned to it, else the CPU.

Ray sets ``CUDA_VISIBLE_DEVICES`` for a task or actor that asked for ``num_gpus`` (fractions
included), so inside it the first visible GPU is always ``cuda:0``; a worker that asked for no GPU
gets none even on a GPU node, and must not grab one. The same config therefore runs on both.
"""

from __future__ import annotations


def assigned_gpu_ids() -> list[str]:
    """GPU ids Ray assigned to the current task/actor ([] outside Ray or without ``num_gpus``)."""
    try:
        import ray
    except ImportError:  # pragma: no cover - ray is a dependency
        return []
    if not ray.is_initialized():
        return []
    try:
        return [str(g) for g in ray.get_gpu_ids()]
    except Exception:  # the driver, or a worker without a GPU resource: nothing assigned
        return []


def choose_device(gpu_ids: list[str], cuda_available: bool) -> str:
    """``cuda:0`` when Ray assigned a GPU and CUDA works, else ``cpu`` (pure, for tests)."""
    return "cuda:0" if gpu_ids and cuda_available else "cpu"


def torch_device() -> str:
    """The torch device string for the current Ray worker (see module docstring)."""
    gpu_ids = assigned_gpu_ids()
    if not gpu_ids:
        return "cpu"
    import torch

    return choose_device(gpu_ids, torch.cuda.is_available())
