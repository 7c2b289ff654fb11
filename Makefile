# The README's two commands: `make demo` (set up + main job) and `make test` (set up + test suite).
PYTHON ?= python3.11
VENV   ?= .venv
RUN    ?= runs/demo
PY      = $(VENV)/bin/python
STAMP   = $(VENV)/.installed

.PHONY: setup demo test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

demo: setup
	$(PY) -m jobs.demo --run $(RUN)

test: setup
	$(PY) tests/realmedia.py  # real clips + MTCNN weights from the registry (cached)
	$(PY) -m pytest -q

lint: setup
	$(VENV)/bin/ruff check featurestore trainkit encoders seqtrain jobs tests bench

bench: setup
	$(PY) bench/bench_store.py --dir /tmp
	$(PY) bench/bench_seqtrain.py
	$(PY) bench/bench_encoders.py
	$(PY) bench/bench_extract.py
	$(PY) bench/bench_video.py

clean:
	rm -rf $(RUN)
