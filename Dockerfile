# syntax=docker/dockerfile:1
# mentorat-bot: migrates the database, then runs the bot, as an unprivileged user; HEALTHCHECK on
# /healthz. Alone it polls Telegram with SQLite in /app/data; compose.yaml runs replicas in webhook
# mode on PostgreSQL (README, "Deploying").
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md babel.cfg ./
COPY bot ./bot
COPY conversations ./conversations
COPY storage ./storage
COPY locales ./locales
# Wheels of the bot and of every dependency: the final stage installs from them, offline.
RUN pip install --no-cache-dir Babel==2.18.0 \
    && pybabel compile -d locales -D messages \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# VERSION follows pyproject.toml (a test checks it); SOURCE and REVISION are passed at build time
# (README, "Deploying": --build-arg SOURCE="$(git remote get-url origin)").
ARG VERSION=0.1.0
ARG SOURCE=""
ARG REVISION=""
LABEL org.opencontainers.image.title="mentorat-bot" \
      org.opencontainers.image.description="Telegram onboarding bot of the Collectif Mentorat" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.revision="${REVISION}"
# WEB_HOST: the webhook server and /healthz must be reachable from outside the container.
# ALLOW_SANDBOX=false: without TELEGRAM_BOT_TOKEN the bot stops with an error instead of serving
# the sandbox, a test chat that anyone reaching the published port could read.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 WEB_HOST=0.0.0.0 WEB_PORT=8080 \
    ALLOW_SANDBOX=false
# sqlite3: the SQLite backups (.backup, .restore). Not pinned: Debian's security updates must
# reach the image at each rebuild.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends sqlite3 \
    && rm -rf /var/lib/apt/lists/*
RUN groupadd --gid 10001 mentorat \
    && useradd --no-log-init --create-home --uid 10001 --gid 10001 mentorat
WORKDIR /app
RUN --mount=type=bind,from=build,source=/wheels,target=/wheels \
    pip install --no-cache-dir --no-index --find-links=/wheels mentorat-bot==${VERSION} \
    && mkdir -p /app/data && chown 10001:10001 /app/data
COPY deploy/healthcheck.py /usr/local/lib/mentorat-healthcheck.py
# Numeric, so that an orchestrator can tell it is not root (Kubernetes runAsNonRoot).
USER 10001:10001
VOLUME ["/app/data"]
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "/usr/local/lib/mentorat-healthcheck.py"]
# Migrations first (one process at a time: PostgreSQL's advisory lock), then the bot as PID 1, so
# that the orchestrator's SIGTERM reaches it and it stops cleanly.
CMD ["sh", "-c", "mentorat-bot migrate && exec mentorat-bot run"]
