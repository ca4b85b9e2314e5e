"""atrous: fast dilated depthwise conv2d, max-pool2d with indices and indexed max-unpool2d (and, as it lands, the fused
separable conv2d) for PyTorch, with handwritten CPU and CUDA kernels."""

import torch

from ._loader import build_info, load_library

load_library()

from . import _ops, _separable  # noqa: E402,F401  (fake kernels, autograd)
from . import nn  # noqa: E402
from .functional import depthwise_conv2d, max_pool2d, max_unpool2d, separable_conv2d  # noqa: E402

__version__ = build_info()["version"]

__all__ = ["__version__", "build_info", "depthwise_conv2d", "max_pool2d", "max_unpool2d", "nn", "separable_conv2d"]
