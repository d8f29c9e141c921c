# a2v: two commands on a fresh machine: `make demo`, `make test`.
PYTHON ?= python3
VENV := .venv
TRITON_ENV := .venv-triton
BIN := $(VENV)/bin

.PHONY: venv demo test test-unit serve proto lint clean system-deps bench bench-quality load cluster

venv: $(VENV)/.installed $(TRITON_ENV)/.installed

# Server + client + dev tools (numpy 2).
$(VENV)/.installed: pyproject.toml model_repository/requirements-mediapipe.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade "pip>=24"
	$(BIN)/pip install -q -e '.[dev]'
	$(BIN)/pip install -q --no-deps -r model_repository/requirements-mediapipe.txt
	# HDR-to-SDR LUTs made once here, not by an upload (media/sdr_luts.py)
	$(BIN)/python -m a2v_server.media.sdr_luts >/dev/null
	touch $@

# The Triton model's environment (numpy 1.26) and the tritonserver binary.
$(TRITON_ENV)/.installed: model_repository/requirements.txt model_repository/requirements-mediapipe.txt model_repository/requirements-triton-server.txt
	$(PYTHON) -m venv $(TRITON_ENV)
	$(TRITON_ENV)/bin/pip install -q -r model_repository/requirements.txt
	$(TRITON_ENV)/bin/pip install -q --no-deps -r model_repository/requirements-mediapipe.txt
	$(TRITON_ENV)/bin/pip install -q --no-deps -r model_repository/requirements-triton-server.txt
	touch $@

# Debian tools the tests use to make and inspect media (ffprobe, espeak-ng, sox).
system-deps:
	@command -v ffprobe >/dev/null && command -v espeak-ng >/dev/null && command -v sox >/dev/null \
	  || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq ffmpeg espeak-ng sox)

demo: venv
	$(BIN)/python -m devstack.demo
	@echo "out/demo.mp4 is ready"

test: venv system-deps lint
	$(BIN)/python -m pytest -q

# Benchmarks (bench/): starts its own Triton + server on free loopback ports, prints a table.
# BENCH_LONG=1 adds the 10-minute memory run; BENCH_RUNS, BENCH_MAX_STREAMS, BENCH_INSTANCES,
# BENCH_LIPSYNC_RUNS (lipsync uploads per size, default 3).
bench: venv system-deps
	$(BIN)/python -m bench

# Quality benchmark (bench/quality/): lip sync, mouth at rest, jitter, lipsync PSNR, music,
# measured on the decoded outputs of its own stack; prints Markdown tables (~5 minutes).
bench-quality: venv system-deps
	$(BIN)/python -m bench.quality

# A loopback cluster (devstack/cluster.py): TRITONS Triton processes and SERVERS a2v-server
# replicas sharing a resume key, on free ports; prints the client target; Ctrl-C stops it.
SERVERS ?= 3
TRITONS ?= 2
cluster: venv
	SERVERS=$(SERVERS) TRITONS=$(TRITONS) $(BIN)/python -m devstack.cluster

# Load test (bench/load.py) on a loopback cluster (SERVERS, TRITONS): LOAD_STREAMS concurrent
# clients for LOAD_MINUTES, one Triton killed and restarted a third of the way in; failed
# requests, latency percentiles, the work per Triton, memory. Exits non-zero if any failed.
load: venv system-deps
	$(BIN)/python -m bench.load

# The tiers that need no Triton: server and client units, the models' algorithms, and the
# in-process service tier (grpc.aio server with a fake backend).
test-unit: venv
	$(BIN)/python -m pytest -q tests/unit tests/models tests/service

# Triton + server in the foreground until Ctrl-C / SIGTERM (then Triton is stopped too).
serve: venv
	$(BIN)/a2v-server --launch-triton

# Regenerate the gRPC/protobuf code from protos/ (never edit the generated files).
proto:
	$(BIN)/python -m grpc_tools.protoc -Iprotos --python_out=client --pyi_out=client \
	  --grpc_python_out=client protos/a2v/v1/audio_to_video.proto

lint: venv
	$(BIN)/ruff check server client tests model_repository bench devstack
	$(BIN)/ruff format --check server client tests model_repository bench devstack
	$(BIN)/mypy

clean:
	rm -rf $(VENV) $(TRITON_ENV) out .pytest_cache
