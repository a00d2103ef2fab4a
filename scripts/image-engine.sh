#!/usr/bin/env bash
# Print the container engine to use: $CONTAINER_ENGINE if set, else docker when its daemon
# answers, else podman. One line on stderr and exit 1 when neither works.
set -euo pipefail
if [ -n "${CONTAINER_ENGINE:-}" ]; then echo "$CONTAINER_ENGINE"; exit 0; fi
if command -v docker >/dev/null && docker info >/dev/null 2>&1; then echo docker; exit 0; fi
if command -v podman >/dev/null; then echo podman; exit 0; fi
echo "no container engine: docker's daemon does not answer and podman is not installed" >&2
exit 1
