# make demo | make test | make install — each works from a fresh clone with only Python 3.10+ and pip.
PYTHON ?= python3
VENV ?= .venv
TORCH ?= torch==2.13.0
BIN := $(VENV)/bin
DATA ?= $(or $(LRA_DATA),data)
DEMO_LISTOPS := $(DATA)/listops-demo
TEST_WORKERS ?= 2

.PHONY: install demo test lint leaderboard bench clean

install: $(VENV)/.installed

# torch first, pinned, so CPU machines take the local CPU wheel (override TORCH for a CUDA build).
$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q "$(TORCH)"
	$(BIN)/python -m pip install -q -e ".[dev]"
	touch $@

# A short ListOps (the generator's own length options), made once.
$(DEMO_LISTOPS)/basic_train.tsv: | install
	$(BIN)/python -m data_prep.listops --out $(DEMO_LISTOPS) --train 20000 --val 1000 --test 1000 \
		--min-length 10 --max-length 60 --max-depth 4 --seed 0

demo: install $(DEMO_LISTOPS)/basic_train.tsv
	$(BIN)/python train.py experiment=demo data_dir=$(DATA)

lint: install
	$(BIN)/ruff check .

# One test file per worker process at a time (module fixtures run once); the slowest tests listed at the end.
test: lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist loadfile --durations=15

# The leaderboard from every results.json under outputs/ and multirun/ (RUNS=dirs to choose; WANDB=entity/project adds W&B).
leaderboard: install
	$(BIN)/python -m lra.leaderboard $(RUNS) $(if $(WANDB),--wandb $(WANDB)) --out $(or $(OUT),leaderboard)

# Training steps/s and peak memory vs sequence length per model (lra.bench) into a new BENCH_OUT under benchmarks/runs/;
# BENCH_ARGS to choose, e.g. BENCH_ARGS="--models fnet,fnet_hybrid --task retrieval --device cuda" (an --out in it wins).
BENCH_OUT ?= benchmarks/runs/$(shell date +%Y-%m-%d_%H-%M-%S)
BENCH_ARGS ?= --models fnet,transformer,transformer-attn0 --lengths 512,1024,2048,4096 --task text
bench: install
	$(BIN)/python -m lra.bench --out $(BENCH_OUT) $(BENCH_ARGS)

clean:
	rm -rf $(VENV) outputs multirun .pytest_cache .ruff_cache
