# One image for every stage; the command picks the stage. Used by docker-compose.yml and
# deploy/k8s for users who run containers. Nothing in the tests or the demo needs it.
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 UV_PROJECT_ENVIRONMENT=/opt/venv PATH=/opt/venv/bin:$PATH
RUN pip install --no-cache-dir uv==0.13.9
WORKDIR /app
COPY pyproject.toml uv.lock README.md ./
COPY shared shared
COPY services services
COPY promoter promoter
COPY deploy deploy
COPY docs docs
RUN uv sync --frozen --no-dev
CMD ["faststream", "run", "services.ingest.app:app"]
