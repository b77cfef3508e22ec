"""Device choice and torchrun's DistributedDataParallel setup, in the nanoGPT manner.

Under ``torchrun --nproc_per_node N`` the environment carries RANK, LOCAL_RANK and
WORLD_SIZE; each process takes one GPU (nccl) or runs on the CPU (gloo). Only rank 0
prints, evaluates and saves.
"""

from __future__ import annotations

import datetime
import os
import platform
from dataclasses import dataclass

import torch
import torch.distributed as dist

from sr.errors import UserError


@dataclass(frozen=True)
class Context:
    device: torch.device
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def select_device(name: str, local_rank: int = 0) -> torch.device:
    """'auto' (CUDA when there is one), 'cpu' or 'cuda'."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cuda":
        if not torch.cuda.is_available():
            raise UserError("--device cuda: no CUDA device is available (use --device cpu)")
        return torch.device("cuda", local_rank)
    return torch.device("cpu")


def setup(device: str) -> Context:
    """Join the process group when torchrun started us; else a single-process context."""
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size <= 1:
        return Context(select_device(device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    dev = select_device(device, local_rank)
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    # Long waits happen at evaluation, which only rank 0 does; allow for a slow CPU eval.
    dist.init_process_group("nccl" if dev.type == "cuda" else "gloo", timeout=datetime.timedelta(hours=2))
    return Context(dev, rank, world_size)


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def all_true(ctx: Context, flag: bool) -> bool:
    """True when ``flag`` holds on every rank (e.g. "my loss is finite")."""
    if not ctx.distributed:
        return flag
    t = torch.tensor([1 if flag else 0], device=ctx.device)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return bool(t.item())


def available_cores() -> int:
    """$OMP_NUM_THREADS when set (the usual way to share a machine), else every core this process may run on."""
    told = os.environ.get("OMP_NUM_THREADS", "")
    return int(told) if told.isdigit() and int(told) > 0 else len(os.sched_getaffinity(0))


def cpu_name() -> str:
    """The model name, with family and model numbers (VMs often say only "Intel(R) Xeon(R) Processor")."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        pass
    if "model name" not in fields:
        return platform.processor() or "unknown CPU"
    return f"{fields['model name']} (family {fields.get('cpu family', '?')} model {fields.get('model', '?')})"


def describe_cpu() -> str:
    """The CPU as speed figures name it: model, threads in use, the kernels torch picked (AVX2, AVX512, ...)."""
    return f"{cpu_name()}, {torch.get_num_threads()} of {os.cpu_count()} threads, {torch.backends.cpu.get_cpu_capability()}"


def describe_machine(ctx: Context) -> str:
    """Where a run happens, for its records: the GPU, or the CPU and its threads."""
    if ctx.device.type == "cuda":
        where = f"GPU {torch.cuda.get_device_name(ctx.device)}"
    else:
        cpu = platform.processor() or platform.machine()
        try:
            with open("/proc/cpuinfo") as f:
                cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
        except (OSError, StopIteration):
            pass
        where = f"CPU {cpu}, {torch.get_num_threads()} of {os.cpu_count()} threads"
    return where + (f", {ctx.world_size} processes" if ctx.distributed else "") + f", torch {torch.__version__}"
