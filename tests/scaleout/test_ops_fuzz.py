"""Property-based fuzz of the new entry points: /livez, /readyz, /metrics (and the request id and
draining middlewares in front of everything). Any method, query string, Authorization and
X-Request-ID header: never a 5xx, a request id always echoed (valid or replaced), the token never
guessed, and nothing changes."""

from __future__ import annotations

import asyncio
import threading

from hypothesis import HealthCheck, given, settings as hypothesis_settings, strategies as st

from tests.conftest import app_client

TOKEN = "fuzz-metrics-token-0123456789"
PATHS = ["/livez", "/readyz", "/metrics", "/metrics/", "/readyz?x=1", "/livez/../metrics"]
header_text = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=80)


def test_probes_and_metrics_never_fail(settings_for):
    settings = settings_for(metrics_token=TOKEN, rate_limits_enabled=False)
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    holder: dict = {}

    async def serve():
        async with app_client(settings) as client:
            holder["client"] = client
            ready.set()
            while not holder.get("stop"):
                await asyncio.sleep(0.01)

    thread = threading.Thread(target=lambda: loop.run_until_complete(serve()), daemon=True)
    thread.start()
    assert ready.wait(120)
    counts: dict[int, int] = {}

    @hypothesis_settings(max_examples=80, deadline=None, derandomize=True,
                         suppress_health_check=[HealthCheck.too_slow])
    @given(method=st.sampled_from(["GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS"]),
           path=st.sampled_from(PATHS), query=header_text, auth=st.one_of(st.none(), header_text,
                                                                          st.just("Bearer " + TOKEN)),
           request_id=st.one_of(st.none(), header_text))
    def check(method, path, query, auth, request_id):
        headers = {}
        if auth is not None:
            headers["Authorization"] = auth
        if request_id is not None:
            headers["X-Request-ID"] = request_id
        url = path + ("&" if "?" in path else "?") + query if query else path

        async def call():
            return await holder["client"].request(method, url, headers=headers)

        response = asyncio.run_coroutine_threadsafe(call(), loop).result(60)
        counts[response.status_code] = counts.get(response.status_code, 0) + 1
        assert response.status_code < 500 or (path.startswith("/readyz") and response.status_code == 503)
        assert response.headers.get("x-request-id")
        if request_id and 8 <= len(request_id) <= 64 and all(c.isalnum() or c in "._-" for c in request_id):
            assert response.headers["x-request-id"] == request_id
        if path.startswith("/metrics") and method == "GET" and response.status_code == 200:
            assert auth == "Bearer " + TOKEN

    try:
        check()
    finally:
        holder["stop"] = True
        thread.join(30)
    assert counts.get(200) and counts.get(401)
