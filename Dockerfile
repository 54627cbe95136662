FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY rbg_flows ./rbg_flows
RUN pip install --no-cache-dir .
USER 65532:65532
ENTRYPOINT ["rbg-flows"]
