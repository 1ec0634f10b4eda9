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

.PHONY: install test demo demo-charlm demo-sentiment clean

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	$(BIN)/python -m pip install -q -e ".[train,plot,dev]"
	touch $(STAMP)

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: demo-charlm demo-sentiment

demo-charlm: $(STAMP)
	rm -rf $(RUNS)/charlm
	$(BIN)/rnnedge train charlm --out $(RUNS)/charlm --epochs 40 --max-minutes 3
	$(BIN)/rnnedge export $(RUNS)/charlm/best.pt --out $(RUNS)/charlm.onnx
	$(BIN)/rnnedge verify $(RUNS)/charlm.onnx --checkpoint $(RUNS)/charlm/best.pt
	$(BIN)/rnnedge generate $(RUNS)/charlm.onnx --prompt "The " --length 300
	$(BIN)/rnnedge bench $(RUNS)/charlm.onnx --checkpoint $(RUNS)/charlm/best.pt

demo-sentiment: $(STAMP)
	rm -rf $(RUNS)/sentiment
	$(BIN)/rnnedge train sentiment --out $(RUNS)/sentiment --epochs 2 --max-minutes 4
	$(BIN)/rnnedge export $(RUNS)/sentiment/best.pt --out $(RUNS)/sentiment.onnx
	$(BIN)/rnnedge verify $(RUNS)/sentiment.onnx --checkpoint $(RUNS)/sentiment/best.pt
	$(BIN)/rnnedge classify $(RUNS)/sentiment.onnx \
	  "One of the finest films I have seen: moving, funny and beautifully acted." \
	  "A tedious mess. The plot makes no sense and I wanted my two hours back."
	$(BIN)/rnnedge bench $(RUNS)/sentiment.onnx --checkpoint $(RUNS)/sentiment/best.pt --reviews 64

clean:
	rm -rf runs .pytest_cache
