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

.PHONY: install test demo demo-charlm demo-sentiment demo-own bench spread matrix cells series ddp clean

# The demo models: trained and exported when missing (make demo retrains them).
define charlm_model
	rm -rf $(RUNS)/charlm $(RUNS)/charlm.onnx
	$(BIN)/rnnedge train charlm --config configs/hamlet_demo.toml --out $(RUNS)/charlm --max-minutes 3
	$(BIN)/rnnedge export $(RUNS)/charlm/best.pt --out $(RUNS)/charlm.onnx
endef
define sentiment_model
	rm -rf $(RUNS)/sentiment $(RUNS)/sentiment.onnx
	$(BIN)/rnnedge train sentiment --config configs/imdb_demo.toml --out $(RUNS)/sentiment --max-minutes 4
	$(BIN)/rnnedge export $(RUNS)/sentiment/best.pt --out $(RUNS)/sentiment.onnx
endef

$(STAMP): pyproject.toml
	@echo "rnnedge: installing into $(VENV) (torch, then the project and its extras; 1-3 min the first time)"
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0
	@echo "rnnedge: torch installed; now the project"
	$(BIN)/python -m pip install -q -e ".[train,plot,dev]"
	touch $(STAMP)
	@echo "rnnedge: installed; the command is $(BIN)/rnnedge (or: source $(BIN)/activate)"

install: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

# Last, the quality check of both trained models again (each preset's [expect] band, the
# closing line of its `rnnedge train`): a WARNING names a model that came out undertrained.
demo: demo-charlm demo-sentiment demo-own
	@$(BIN)/python -c 'import json, sys; print("\n".join(r["line"] for f in sys.argv[1:] for r in map(json.loads, open(f)) if r.get("event") == "quality"))' $(RUNS)/charlm/train_log.jsonl $(RUNS)/sentiment/train_log.jsonl

$(RUNS)/charlm.onnx: | $(STAMP)
	$(charlm_model)

$(RUNS)/sentiment.onnx: | $(STAMP)
	$(sentiment_model)

demo-charlm: $(STAMP)
	$(charlm_model)
	$(BIN)/rnnedge verify $(RUNS)/charlm.onnx --checkpoint $(RUNS)/charlm/best.pt
	$(BIN)/rnnedge generate $(RUNS)/charlm.onnx --prompt "The " --length 300
	OPENBLAS_NUM_THREADS=1 $(BIN)/rnnedge bench $(RUNS)/charlm.onnx --checkpoint $(RUNS)/charlm/best.pt

demo-sentiment: $(STAMP)
	$(sentiment_model)
	$(BIN)/rnnedge verify $(RUNS)/sentiment.onnx --checkpoint $(RUNS)/sentiment/best.pt
	$(BIN)/rnnedge classify $(RUNS)/sentiment.onnx \
	  "One of the finest films I have seen: moving, funny and beautifully acted." \
	  "A tedious mess. The plot makes no sense and I wanted my two hours back."
	OPENBLAS_NUM_THREADS=1 $(BIN)/rnnedge bench $(RUNS)/sentiment.onnx --checkpoint $(RUNS)/sentiment/best.pt --cases 64

# Your own model: a user-style streaming GRU (examples/kws.py) exported behind the parity
# gate, verified torch-free against its golden bundle, benchmarked, and given int8 weights.
demo-own: $(STAMP)
	mkdir -p $(RUNS) && rm -f $(RUNS)/kws.onnx $(RUNS)/kws.int8.onnx
	$(BIN)/rnnedge export --model examples/kws.py:build --out $(RUNS)/kws.onnx \
	  --input "feats:float32[batch,time,40]" --input "h:float32[1,batch,64]" \
	  --output logits --output h_new --state h=h_new
	$(BIN)/rnnedge verify $(RUNS)/kws.onnx
	$(BIN)/rnnedge bench $(RUNS)/kws.onnx
	$(BIN)/rnnedge optimize $(RUNS)/kws.onnx --numba-int8 --out $(RUNS)/kws.int8.onnx

# The benchmark suite (under 10 min once the demo models exist): benchmarks/results/bench.*
# (`make matrix` times fresh user-style models over cells, batches and lengths instead)
bench: $(RUNS)/charlm.onnx $(RUNS)/sentiment.onnx
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/suite.py \
	  --charlm $(RUNS)/charlm.onnx --charlm-checkpoint $(RUNS)/charlm/best.pt \
	  --sentiment $(RUNS)/sentiment.onnx --sentiment-checkpoint $(RUNS)/sentiment/best.pt \
	  --cells-dir runs/cells --work $(RUNS)/bench --out benchmarks/results

# The headline ratios (fast and fast-int8 against onnxruntime and the floors; the classifier's
# reviews/s) over five runs, with their spread (a few minutes): benchmarks/results/spread.*
spread: $(RUNS)/charlm.onnx $(RUNS)/sentiment.onnx
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/spread.py \
	  --charlm $(RUNS)/charlm.onnx --sentiment $(RUNS)/sentiment.onnx --out benchmarks/results

# The 36-cell matrix: LSTM/GRU/RNN x hidden 64/256/1024 x (batch, time) in (1, 1), (1, 100),
# (16, 100), (64, 50), fresh weights; every engine's p50 over onnxruntime used directly
# (I/O binding), parity first, one thread (about 10 min): benchmarks/results/matrix.*
matrix: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/matrix.py --work runs/matrix --out benchmarks/results

# Every cell on both workloads, trained under fixed budgets on one thread (about 75 min):
# benchmarks/results/cells.*
cells: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/cells.py --runs runs/cells --out benchmarks/results

# Every cell on Japanese Vowels, three seeds each, one thread (a few minutes): accuracy,
# training seconds, file size, per-frame latency per engine, int8 behind its gate:
# benchmarks/results/series.*
series: $(STAMP)
	OPENBLAS_NUM_THREADS=1 $(BIN)/python benchmarks/series.py --runs runs/series --out benchmarks/results

# Training throughput of 1 process against 2 (torchrun, gloo) per task, parity of the weights
# checked first (about 3 min on 2 cores): benchmarks/results/ddp.*
ddp: $(STAMP)
	$(BIN)/python benchmarks/ddp.py --work runs/ddp --out benchmarks/results

clean:
	rm -rf runs .pytest_cache
