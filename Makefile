# stream-trapti: `make demo` runs the TRAPTI flow on the bundled defaults, `make test` runs the tests.
# Both create .venv with a Python >= 3.12 on first use and install the package into it, editable, with its dev extra.

VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: demo test test-quick lint study sweep paper-ratio bench workloads mappings hardware clean

$(PY):
	@python=$$(scripts/find_python.sh) && echo "creating $(VENV) with $$python" && "$$python" -m venv $(VENV)

$(STAMP): $(PY) pyproject.toml
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

demo: $(STAMP)
	$(PY) scripts/main_trapti.py

test: $(STAMP)
	$(PY) -m pytest

test-quick: $(STAMP)
	$(PY) -m pytest -m "not slow"

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

study: $(STAMP)
	$(PY) scripts/main_compare_mha_gqa.py

sweep: $(STAMP)
	$(VENV)/bin/stream-trapti sweep inputs/design_sweep_default.yaml

paper-ratio: $(STAMP)
	$(PY) scripts/main_paper_ratio.py

bench: $(STAMP)
	$(PY) scripts/bench_trace.py
	$(PY) scripts/bench_explore.py
	$(PY) scripts/bench_sweep.py

workloads: $(STAMP)
	$(PY) scripts/make_workloads.py

mappings: $(STAMP)
	$(PY) scripts/make_mappings.py

hardware: $(STAMP)
	$(PY) scripts/make_hardware.py

clean:
	rm -rf $(VENV) outputs .pytest_cache
