FROM python:3.11-slim
WORKDIR /app
COPY pyproject.toml README.md ./
COPY event_store ./event_store
COPY projections ./projections
COPY schemas ./schemas
COPY sync_server ./sync_server
COPY client_sdk ./client_sdk
RUN pip install --no-cache-dir . && useradd --system sync
USER sync
EXPOSE 8000
CMD ["sync-server", "serve"]
