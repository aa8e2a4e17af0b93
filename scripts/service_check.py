#!/usr/bin/env python3
"""Is an optional service reachable? Exit 0 if yes; if not, explain and exit 1 — or fail hard
with exit 2 when RELISTEN_REQUIRE_SERVICES=1 (CI), so a missing database can't pass silently."""

from __future__ import annotations

import os
import sys


def postgres_reachable(url: str) -> str | None:
    import psycopg

    try:
        with psycopg.connect(url.replace("/relisten", "/postgres", 1), connect_timeout=3):
            return None
    except psycopg.Error as error:
        return str(error).strip().splitlines()[0]


def redis_reachable(url: str) -> str | None:
    import redis

    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
        return None
    except redis.RedisError as error:
        return str(error)


CHECKS = {"postgres": postgres_reachable, "redis": redis_reachable}


def main(argv: list[str]) -> int:
    if len(argv) != 3 or argv[1] not in CHECKS:
        print(f"usage: {argv[0]} postgres|redis URL", file=sys.stderr)
        return 2
    problem = CHECKS[argv[1]](argv[2])
    if problem is None:
        return 0
    required = os.environ.get("RELISTEN_REQUIRE_SERVICES") == "1"
    print(f"{'ERROR' if required else 'SKIPPED'}: {argv[1]} not reachable ({problem})."
          + (" RELISTEN_REQUIRE_SERVICES=1 makes this a failure." if required
             else " Set RELISTEN_REQUIRE_SERVICES=1 to make this a failure."))
    return 2 if required else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
