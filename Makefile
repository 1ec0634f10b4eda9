# rnnedge: `make demo` runs the main job end to end, `make test` runs the suite.
# Both create .venv when missing and install the project (torch's CPU build) into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
RUNS ?= runs/demo

# The data directory: ../shared/data when it exists (this workplace), else the user's
# RNNEDGE_DATA or the default cache, where missing files are downloaded.
ifneq ($(wildcard ../shared/data),)
RNNEDGE_DATA ?= $(abspath ../shared/data)
endif
export RNNEDGE_DATA

.PHONY: install test demo demo-charlm demo-sentiment bench cells clean

# The demo models: trained and exported when missing (make demo retrains them).
define charlm_model
	rm -rf $(RUNS)/charlm $(RUNS)/charlm.onnx
	$(BIN)/rnnedge train charlm --out $(RUNS)/charlm --epochs 40 --max-minutes 3
	$(BIN)/rnnedge export $(RUNS)/charlm/best.pt --out $(RUNS)/charlm.onnx
endef
define sentiment_model
	rm -rf $(RUNS)/sentiment $(RUNS)/sentiment.onnx
	$(BIN)/rnnedge train sentiment --out $(RUNS)/sentiment --epochs 2 --max-minutes 4
	$(BIN)/rnnedge export $(RUNS)/sentiment/best.pt --out $(RUNS)/sentiment.onnx
endef

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,plot,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: demo-charlm demo-sentiment

$(RUNS)/charlm.onnx: | $(STAMP)
	$(charlm_model)

$(RUNS)/sentiment.onnx: | $(STAMP)
	$(sentiment_model)

demo-charlm: $(STAMP)
	$(charlm_model)
	$(BIN)/rnnedge verify $(RUNS)/charlm.onnx --checkpoint $(RUNS)/charlm/best.pt
	$(BIN)/rnnedge generate $(RUNS)/charlm.onnx --prompt "The " --length 300
	$(BIN)/rnnedge bench $(RUNS)/charlm.onnx --checkpoint $(RUNS)/charlm/best.pt

demo-sentiment: $(STAMP)
	$(sentiment_model)
	$(BIN)/rnnedge verify $(RUNS)/sentiment.onnx --checkpoint $(RUNS)/sentiment/best.pt
	$(BIN)/rnnedge classify $(RUNS)/sentiment.onnx \
	  "One of the finest films I have seen: moving, funny and beautifully acted." \
	  "A tedious mess. The plot makes no sense and I wanted my two hours back."
	$(BIN)/rnnedge bench $(RUNS)/sentiment.onnx --checkpoint $(RUNS)/sentiment/best.pt --reviews 64

# The benchmark suite (under 10 min once the demo models exist): benchmarks/results/bench.*
bench: $(RUNS)/charlm.onnx $(RUNS)/sentiment.onnx
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/suite.py \
	  --charlm $(RUNS)/charlm.onnx --charlm-checkpoint $(RUNS)/charlm/best.pt \
	  --sentiment $(RUNS)/sentiment.onnx --sentiment-checkpoint $(RUNS)/sentiment/best.pt \
	  --cells-dir runs/cells --work $(RUNS)/bench --out benchmarks/results

# Every cell on both workloads, trained under fixed budgets on one thread (about 75 min):
# benchmarks/results/cells.*
cells: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/cells.py --runs runs/cells --out benchmarks/results

clean:
	rm -rf runs .pytest_cache
