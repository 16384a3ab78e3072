"""The PostgreSQL test server's address, for the URL and CLI tests.

``FIXSEQ_PG_DSN`` names it (``bash scripts/pg-test-server.sh run ...`` sets it),
as a libpq connection string or URL; ``require_dsn`` skips without it, except
under CI, where a missing server is a failure.
"""

from __future__ import annotations

import urllib.parse

from postgres_support import require_dsn

__all__ = ["pg_url"]


def pg_url(**params: str) -> str:
    """Return a ``postgresql://`` store URL for the test server with ``params`` added.

    Calls pytest.skip (or pytest.fail under CI=true) when there is no server.
    """
    dsn = require_dsn()
    if not dsn.startswith(("postgresql://", "postgres://")):
        import psycopg.conninfo

        parts = psycopg.conninfo.conninfo_to_dict(dsn)
        quote = urllib.parse.quote
        user = quote(str(parts.pop("user", "")), safe="")
        password = parts.pop("password", None)
        auth = user + (":" + quote(str(password), safe="") if password else "")
        host = str(parts.pop("host", "127.0.0.1"))
        port = parts.pop("port", None)
        db = quote(str(parts.pop("dbname", "")), safe="")
        netloc = (auth + "@" if auth else "") + host + (f":{port}" if port else "")
        rest = urllib.parse.urlencode({k: str(v) for k, v in parts.items()})
        dsn = f"postgresql://{netloc}/{db}" + ("?" + rest if rest else "")
    query = "&".join(f"{k}={urllib.parse.quote(v, safe='')}" for k, v in params.items())
    if not query:
        return dsn
    return dsn + ("&" if "?" in dsn else "?") + query
