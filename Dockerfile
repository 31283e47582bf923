# One image for every service; the command picks the service (see Procfile / docker-compose.yml).
FROM python:3.11-slim
ENV PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app
COPY pyproject.toml ./
COPY shared ./shared
COPY services ./services
COPY deploy ./deploy
COPY alembic.ini Procfile ./
RUN pip install --upgrade pip && pip install .
RUN useradd --system --home /app connector
USER connector
CMD ["python", "-m", "services.ingress"]
