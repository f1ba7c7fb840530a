# crate-mirror: a slim, non-root image. The cache lives on a volume; /healthz is the health check,
# /readyz the readiness check for whatever routes traffic to it (see below).
FROM python:3.11-slim

ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1 PIP_NO_CACHE_DIR=1

WORKDIR /app
COPY pyproject.toml README.md ./
COPY mirror ./mirror
RUN pip install . \
 && useradd --system --uid 10001 --home-dir /var/lib/crate-mirror --create-home mirror
# Owned by the service user: trust-on-first-use records new crates in the capability lock.
COPY --chown=mirror policies /etc/crate-mirror/policies
COPY mirror.example.yaml /etc/crate-mirror/mirror.yaml

USER mirror
VOLUME ["/var/lib/crate-mirror"]
EXPOSE 8080
ENV CRATE_MIRROR_LISTEN_HOST=0.0.0.0 \
    CRATE_MIRROR_CACHE_DIR=/var/lib/crate-mirror

# Liveness, not readiness: Docker restarts an unhealthy container, and a mirror whose upstream
# is down (so /readyz says 503) must keep running and serving its cache, not be restarted.
# Point a load balancer or a Kubernetes readinessProbe at /readyz (200 when upstream answers,
# the cache takes writes and the policy is loaded; 503 with the reasons otherwise).
HEALTHCHECK --interval=30s --timeout=3s --start-period=20s --retries=3 \
  CMD python -c "import urllib.request,sys; sys.exit(urllib.request.urlopen('http://127.0.0.1:8080/healthz', timeout=2).status != 200)"

ENTRYPOINT ["crate-mirror"]
CMD ["serve", "--config", "/etc/crate-mirror/mirror.yaml", "--policy", "/etc/crate-mirror/policies/default.yaml"]
