"""A network's size worked out from its keyword arguments, before any module object exists.

Each model class has a static ``size(**kwargs)`` beside its constructor that adds up what the
constructor would build; ``network_size`` fills in the constructor's defaults and calls it.
A checkpoint that describes a billion parameters or a million layers is refused by this
arithmetic (``sr.checkpoint_fields``) instead of being built first.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

from torch import nn


class NetworkSize(NamedTuple):
    layers: int  # weighted layers (convolutions, dense layers)
    widest: int  # the most channels any layer has
    parameters: int


def conv_parameters(c_in: int, c_out: int, kernel: int, bias: bool = True) -> int:
    """Parameters of a ``kernel`` x ``kernel`` convolution (or deconvolution) from ``c_in`` to ``c_out`` channels."""
    return c_in * c_out * kernel * kernel + (c_out if bias else 0)


def network_size(cls: type[nn.Module], kwargs: dict[str, Any]) -> NetworkSize:
    """The size of ``cls(**kwargs)`` by arithmetic alone; ``kwargs`` are keyword arguments of ``cls``
    of the types its signature names (``sr.checkpoint_fields`` checks them first)."""
    params = inspect.signature(cls).parameters
    return cls.size(**{name: kwargs.get(name, p.default) for name, p in params.items()})
