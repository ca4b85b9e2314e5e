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

$(VENV)/.ready-$(TORCH_VERSION)-$(TORCHVISION_VERSION)-$(TIMM_VERSION)-mpl-tqdm:
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "torch==$(TORCH_VERSION)" numpy ninja "setuptools>=64" wheel \
		pytest hypothesis expecttest
	# torchvision's networks give the depthwise layers of the network benchmark and its test.
	$(PY) -m pip install --quiet --no-deps "torchvision==$(TORCHVISION_VERSION)" && $(PY) -m pip install --quiet pillow
	# timm's networks give the separable layers of the separable benchmark's network mode.
	$(PY) -m pip install --quiet --no-deps "timm==$(TIMM_VERSION)"
	# matplotlib draws the plots of benchmarks/run.py; tqdm shows the suites' progress.
	$(PY) -m pip install --quiet matplotlib tqdm
	rm -f $(VENV)/.ready-*
	touch $@

venv: $(VENV)/.ready-$(TORCH_VERSION)-$(TORCHVISION_VERSION)-$(TIMM_VERSION)-mpl-tqdm

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

# Every suite (benchmarks/run.py), quick by default; `make bench BENCH_ARGS=` runs them at full length.
# The allocator keeps freed memory, so that fresh outputs do not page-fault by chance on either side.
BENCH_ARGS ?= --quick
bench: build
	MALLOC_MMAP_THRESHOLD_=1073741824 MALLOC_TRIM_THRESHOLD_=4294967296 \
		$(PY) benchmarks/run.py $(BENCH_ARGS) --out build/bench

clean:
	rm -rf build dist *.egg-info python/atrous/*.so
