# FIN worker image: the same code and pins as `make` uses (constraints.txt), run as a non-root user.
#
#   docker build -t fin-hub .                      (docker-compose.yml builds it as fin-hub:local)
#   docker run fin-hub                             python app.py worker, configured by FIN_* env
#   docker run fin-hub python app.py topics create (any other app.py command)
#
# Every runtime dependency has a manylinux wheel for CPython 3.11 on x86_64 (rocksdict needs
# glibc >= 2.28; this Debian trixie base has more), so no compiler is installed.
FROM python:3.11.15-slim-trixie

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# A fixed uid/gid so that volume ownership is predictable; /var/lib/fin holds the RocksDB tables
# and is owned by that user, so a named volume mounted there starts out writable by it.
RUN groupadd --system --gid 10001 fin \
    && useradd --system --uid 10001 --gid fin --home-dir /var/lib/fin --no-create-home \
        --shell /usr/sbin/nologin fin \
    && mkdir -p /var/lib/fin \
    && chown fin:fin /var/lib/fin

WORKDIR /app

# The worker runs from this source tree (`python app.py`): settings.py finds config/ and schemas/
# next to itself. `pip install .` brings the pinned dependencies (and a copy of the packages).
COPY . /app
RUN pip install -c constraints.txt . \
    && rm -rf build ./*.egg-info

USER fin

# Defaults for a container; docker-compose.yml sets the real values per worker.
ENV FIN_DATA_DIR=/var/lib/fin/worker \
    FIN_WEB_HOST=0.0.0.0 \
    FIN_WEB_PORT=6066

EXPOSE 6066

# /health needs no API key. The address is the one the worker binds (0.0.0.0 reaches it too).
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://%s:%s/health' % (os.environ.get('FIN_WEB_HOST', '127.0.0.1'), os.environ.get('FIN_WEB_PORT', '6066')), timeout=4)"]

CMD ["python", "app.py", "worker"]
