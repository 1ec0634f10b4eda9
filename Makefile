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

.PHONY: install test demo demo-charlm clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,plot,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: demo-charlm

demo-charlm: $(STAMP)
	rm -rf $(RUNS)/charlm
	$(BIN)/rnnedge train charlm --out $(RUNS)/charlm --epochs 40 --max-minutes 3
	$(BIN)/rnnedge export $(RUNS)/charlm/best.pt --out $(RUNS)/charlm.onnx
	$(BIN)/rnnedge verify $(RUNS)/charlm.onnx --checkpoint $(RUNS)/charlm/best.pt
	$(BIN)/rnnedge generate $(RUNS)/charlm.onnx --prompt "The " --length 300
	$(BIN)/rnnedge bench $(RUNS)/charlm.onnx --checkpoint $(RUNS)/charlm/best.pt

clean:
	rm -rf runs .pytest_cache
