# A minimal container for the Impact Tracker: the same production command as docs/deploy.md.
#   docker build -t impact-tracker .
#   docker run -p 8000:8000 -e SECRET_KEY=... -e ALLOWED_HOSTS=impact.example.org \
#              -e DATABASE_URL=postgres://... impact-tracker
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1
WORKDIR /app

COPY pyproject.toml README.md ./
COPY impact ./impact
COPY reports ./reports
RUN pip install .

COPY manage.py gunicorn.conf.py ./
COPY templates ./templates
COPY static ./static
COPY scripts/start ./scripts/start

# Static files are collected at build time too, so a read-only container still serves them.
RUN SECRET_KEY=build-only DEBUG=false python manage.py collectstatic --noinput --verbosity 0

RUN useradd --system --uid 10001 impact && chown -R impact /app/staticfiles
USER impact
EXPOSE 8000
HEALTHCHECK --interval=30s --timeout=5s CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8000/healthz').status != 200)"
CMD ["scripts/start"]
