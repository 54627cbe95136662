# One image for the worker, the watcher, the conversion webhook (`rbg-flows webhook`, and its one-shot
# `webhook-certs`) and the CLI. The sim (rbg_flows/sim: a local control plane for
# development and tests) is left out: nothing the orchestrator runs imports it (an import contract
# checks that), and `rbg-flows sim` in this image says it is not installed.
# Linted by tests/unit/test_image.py (hadolint, every finding fails).
FROM python:3.11-slim AS build
ENV PIP_DISABLE_PIP_VERSION_CHECK=1
WORKDIR /src
COPY pyproject.toml README.md ./
COPY rbg_flows ./rbg_flows
RUN rm -rf rbg_flows/sim && pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM python:3.11-slim
# No .pyc writes at run time: the root filesystem is read-only in the Deployments.
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY --from=build /wheels /wheels
# The wheel's own dependency ranges (pyproject.toml) are what is installed; the image pins nothing else.
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels
# A numeric non-root user (the distroless "nonroot" id), so runAsNonRoot can verify it without a passwd entry.
USER 65532:65532
ENTRYPOINT ["rbg-flows"]
