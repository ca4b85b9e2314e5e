"""atrous: fast dilated depthwise conv2d, fused depthwise-separable conv2d, max-pool2d with indices and indexed
max-unpool2d for PyTorch, with handwritten CPU and CUDA kernels; atrous.convert swaps them into a model."""

import torch

from ._loader import build_info, load_library

load_library()

from . import _ops, _separable  # noqa: E402,F401  (fake kernels, autograd)
from . import nn  # noqa: E402
from ._convert import Conversion, convert  # noqa: E402
from .functional import depthwise_conv2d, max_pool2d, max_unpool2d, separable_conv2d  # noqa: E402

__version__ = build_info()["version"]

__all__ = ["__version__", "Conversion", "build_info", "convert", "depthwise_conv2d", "max_pool2d", "max_unpool2d", "nn",
           "separable_conv2d"]
