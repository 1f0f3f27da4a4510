#!/bin/sh
# A tiny HTTP service for `freight service deploy`: answers /healthz and / on $PORT (default 8080).
exec httpd -f -p "${PORT:-8080}" -h /www
