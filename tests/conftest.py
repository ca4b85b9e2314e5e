import pytest
import torch

import atrous  # noqa: F401  (registers the ops)

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture(params=DEVICES)
def device(request):
    return request.param


def pytest_report_header(config):
    info = atrous.build_info()
    return (f"atrous {info['version']} (torch {info['torch_version']}, cuda kernels: {info['cuda']}, "
            f"archs: {info['cuda_arch_list']}); CPU kernels: {info['cpu_capability']} of "
            f"{info['cpu_capabilities']}; devices under test: {DEVICES}")
