"""The image's HEALTHCHECK: exit 0 when the bot in this container answers GET /healthz, 1 otherwise.

Standard library only, so that a check every 30 seconds costs a few milliseconds, not the bot's
imports. Both modes serve /healthz on WEB_HOST:WEB_PORT (polling mode too, for this check).
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request

# The server listens on every interface in the image (WEB_HOST=0.0.0.0): ask the loopback.
WILDCARDS = {"", "0.0.0.0", "::", "[::]"}


def main() -> int:
    host = os.environ.get("WEB_HOST", "127.0.0.1")
    port = os.environ.get("WEB_PORT", "8080")
    if host in WILDCARDS:
        host = "127.0.0.1"
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=4) as response:
            return 0 if response.status == 200 else 1
    except (urllib.error.URLError, OSError) as error:
        print(f"healthcheck: {url}: {error}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
