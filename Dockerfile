# mentorat-bot: a slim image that runs as an unprivileged user; the SQLite default lives in /app/data.
FROM python:3.11-slim AS build
WORKDIR /src
COPY pyproject.toml README.md babel.cfg ./
COPY bot ./bot
COPY conversations ./conversations
COPY storage ./storage
COPY locales ./locales
RUN pip install --no-cache-dir Babel \
    && pybabel compile -d locales -D messages \
    && pip wheel --no-cache-dir --wheel-dir /wheels .

FROM python:3.11-slim
# In a container the webhook server (WEBHOOK_URL set) must listen beyond the loopback.
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 WEB_HOST=0.0.0.0
RUN useradd --create-home --uid 10001 mentorat
WORKDIR /app
COPY --from=build /wheels /wheels
RUN pip install --no-cache-dir /wheels/*.whl && rm -rf /wheels \
    && mkdir -p /app/data && chown mentorat:mentorat /app/data
USER mentorat
VOLUME ["/app/data"]
EXPOSE 8080
CMD ["mentorat-bot", "run"]
