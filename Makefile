# `make test` and `make bench` do all set-up on a fresh machine: a virtual environment with torch
# and the build dependencies, then the build, then the tests or the benchmarks.
PYTHON ?= python3
VENV ?= .venv
TORCH_VERSION ?= 2.14.1
TORCHVISION_VERSION ?= 0.29.1
TIMM_VERSION ?= 1.0.29
PY := $(VENV)/bin/python
# torch's cpp_extension would guess CUDA_HOME from nvcc's path; point it at the toolkit instead.
ifneq ($(wildcard /usr/local/cuda/bin/nvcc),)
export CUDA_HOME ?= /usr/local/cuda
endif
export MAX_JOBS ?= 2

.PHONY: all venv build test bench clean

all: test

$(VENV)/.ready-$(TORCH_VERSION)-$(TORCHVISION_VERSION)-$(TIMM_VERSION):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)" numpy ninja "setuptools>=64" wheel \
		pytest hypothesis expecttest
	# torchvision's networks give the depthwise layers of the network benchmark and its test.
	$(PY) -m pip install --quiet --no-deps "torchvision==$(TORCHVISION_VERSION)" && $(PY) -m pip install --quiet pillow
	# timm's networks give the separable layers of the separable benchmark's network mode.
	$(PY) -m pip install --quiet --no-deps "timm==$(TIMM_VERSION)"
	rm -f $(VENV)/.ready-*
	touch $@

venv: $(VENV)/.ready-$(TORCH_VERSION)-$(TORCHVISION_VERSION)-$(TIMM_VERSION)

build: venv
	$(PY) -m pip install --quiet --no-build-isolation --no-deps -e .
	$(PY) -c "import atrous, json; print('atrous build:', json.dumps(atrous.build_info()))"

# The CPU tests run under the capability in use (the best this CPU runs) and again, their fast
# cases, under each other one it runs (ATROUS_CPU_CAPABILITY; csrc/cpu/capability.h).
CAPABILITY_TESTS := tests/test_depthwise.py tests/test_max_pool.py tests/test_max_unpool.py \
	tests/test_cpu_capability.py tests/test_depthwise_networks.py tests/test_separable.py

test: build
	$(PY) -m pytest -q tests
	@for cap in $$($(PY) -c "import atrous; i = atrous.build_info(); \
		print(' '.join(c for c in i['cpu_capabilities_supported'] if c != i['cpu_capability']))"); do \
		echo "== CPU tests under ATROUS_CPU_CAPABILITY=$$cap"; \
		ATROUS_CPU_CAPABILITY=$$cap $(PY) -m pytest -q -m "not slow" $(CAPABILITY_TESTS) || exit 1; \
	done

bench: build
	$(PY) benchmarks/bench_depthwise.py
	$(PY) benchmarks/bench_depthwise.py --networks
	$(PY) benchmarks/bench_max_unpool.py
	$(PY) benchmarks/bench_max_pool.py
	$(PY) benchmarks/bench_separable.py
	$(PY) benchmarks/bench_separable.py --networks

clean:
	rm -rf build dist *.egg-info python/atrous/*.so
