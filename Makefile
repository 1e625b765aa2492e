# bertlab: `make help` lists the targets.
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
# A local copy of the NCBI Disease corpus (original/ and conll/ inside); the shared copy
# beside this checkout when there is one, otherwise `make data` downloads the corpus.
NCBI_DISEASE_DIR ?= $(wildcard $(CURDIR)/../shared/datasets/ncbi-disease)
export NCBI_DISEASE_DIR
ARGS ?=
DATA_ARGS ?=
MODEL ?=
INPUT ?=
BENCH_ARGS ?=

.PHONY: help install data tc ner predict benchmark benchmark-predict bench-speed bench-quality test test-full compare tensorboard lint clean

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-18s %s\n", $$1, $$2}'

install: $(VENV)/.installed  ## create .venv and install bertlab with pinned dependencies

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -c constraints.txt -e ".[dev]"
	$(BIN)/pip uninstall --quiet --yes torchvision  # see constraints.txt
	touch $@

data: install  ## build data/ncbi_tc3 and data/ncbi_ner from the NCBI Disease corpus
	$(BIN)/python scripts/prepare_data.py $(DATA_ARGS)

tc: install data  ## train, test and save the 3-class abstract classifier (on the GPU if there is one)
	$(BIN)/python scripts/train_tc.py model.dataset.num_classes=3 $(ARGS)

ner: install data  ## train, test and evaluate disease NER (on the GPU if there is one)
	$(BIN)/python scripts/train_ner.py $(ARGS)

predict: install  ## classify or tag new text: make predict MODEL=x.nemo INPUT=texts.txt [ARGS="--format conll"]
	@test -n "$(MODEL)" || { echo "usage: make predict MODEL=path/to/model.nemo INPUT=file [ARGS=...]"; exit 2; }
	$(BIN)/python scripts/predict.py $(MODEL) $(INPUT) $(ARGS)

benchmark: install data  ## the NER accuracy/speed target: test entity F1 >= 0.80 within 30 min
	$(BIN)/python scripts/benchmark_ner.py exp_manager.name=benchmark_ner $(ARGS)

bench-speed: install  ## training speed vs stock NeMo and Hugging Face (BENCH_ARGS="--task tc --epochs 2")
	$(BIN)/python scripts/benchmark_speed.py $(BENCH_ARGS)

bench-quality: install  ## test scores vs Hugging Face over 3 seeds, recipes chosen on dev (BENCH_ARGS="--task ner")
	$(BIN)/python scripts/benchmark_quality.py $(BENCH_ARGS)

benchmark-predict: install data  ## prediction speed vs NeMo's own inference: ARGS="--ner x.nemo --tc y.nemo"
	$(BIN)/python scripts/benchmark_predict.py $(ARGS)

test: install  ## the test suite, tiny end-to-end training runs included (~8 min here)
	$(BIN)/python -m pytest -m "not slow" $(ARGS)

test-full: install  ## every test, the full default recipes included (~25 min here)
	$(BIN)/python -m pytest $(ARGS)

compare: install  ## table and plot comparing the runs under experiments/
	$(BIN)/python scripts/compare_runs.py experiments $(ARGS)

tensorboard: install  ## serve experiments/ on http://localhost:6006
	$(BIN)/tensorboard --logdir experiments --port 6006

lint: install  ## ruff
	$(BIN)/ruff check bertlab scripts tests

clean:  ## remove generated data and runs (keeps .venv)
	rm -rf data/ncbi_tc3 data/ncbi_ner data/downloads experiments
