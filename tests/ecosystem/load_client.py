"""Many concurrent requests, each with its own trace: run as a subprocess.

``python -m tests.ecosystem.load_client URL COUNT`` sends ``COUNT`` requests at once (one
greenlet and one connection each) to ``URL`` (the example's ``/fanout`` view), each with
its own baseplate trace headers, and prints one JSON object: the trace id each request
sent and what the server said it saw.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import http.client  # noqa: E402
import json  # noqa: E402
import sys  # noqa: E402
import urllib.parse  # noqa: E402
from typing import Any  # noqa: E402

import gevent.pool  # noqa: E402

FIRST_TRACE_ID = 10_000_000


def one(url: urllib.parse.SplitResult, index: int) -> dict[str, Any]:
    trace_id = FIRST_TRACE_ID + index
    headers = {
        "X-Trace": str(trace_id),
        "X-Parent": "1",
        "X-Span": str(trace_id + 7),
        "X-Sampled": "1",
    }
    for attempt in range(5):
        connection = http.client.HTTPConnection(url.netloc, timeout=120)
        try:
            connection.request("GET", f"{url.path}?{url.query}", headers=headers)
            response = connection.getresponse()
            raw = response.read()
            if response.status != 200:
                return {"sent": trace_id, "status": response.status, "seen": raw.decode()}
            return {"sent": trace_id, "status": response.status, "seen": json.loads(raw)}
        except ConnectionError:
            gevent.sleep(0.05 * (attempt + 1))
        finally:
            connection.close()
    return {"sent": trace_id, "status": 0, "seen": None}


def main() -> None:
    url = urllib.parse.urlsplit(sys.argv[1])
    count = int(sys.argv[2])
    pool = gevent.pool.Pool(count)
    results = pool.map(lambda index: one(url, index), range(count))
    print(json.dumps(results))


if __name__ == "__main__":
    main()
