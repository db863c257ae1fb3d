"""`allervers serve`: uvicorn (uvloop + httptools when installed) on the embedded defaults."""

from __future__ import annotations

import asyncio
import logging

import uvicorn

from kernel.settings import Settings


def serve(telegram_polling: bool = False, host: str | None = None, port: int | None = None) -> int:
    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    from kernel import logscrub

    logscrub.install(settings.secret_key)  # before the first record: uvicorn's included
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from allervers.app import create_app

    app = create_app(settings)
    base = f"http://{host}:{port}"
    print("\nAllervers is starting:")
    print(f"  web chat (the public):  {base}/chat")
    print(f"  worker inbox:           {base}/inbox")
    if settings.seed_demo:
        print(f"  demo worker login:      {settings.demo_worker_email} / {settings.demo_worker_password}")
    print(f"  database:               {settings.database_url}")
    print(f"  live updates:           {'Redis ' + settings.redis_url if settings.redis_url else 'in-process'}\n")
    # timeout_graceful_shutdown: at SIGTERM uvicorn waits for the responses in progress, for ever by
    # default; the live streams end by themselves when draining (conversations/webhooks.sse_events),
    # anything else gets the grace period (ops/shutdown.py).
    config = uvicorn.Config(app, host=host, port=port, log_level="info", access_log=False,
                            proxy_headers=True, forwarded_allow_ips=settings.forwarded_allow_ips,
                            timeout_graceful_shutdown=max(1, round(settings.shutdown_grace_seconds)))
    server = uvicorn.Server(config)
    if not telegram_polling:
        server.run()
        return 0

    async def run_with_polling() -> None:
        stop = asyncio.Event()
        serving = asyncio.create_task(server.serve())
        while not server.started:
            if serving.done():
                return
            await asyncio.sleep(0.05)
        polling = asyncio.create_task(poll_telegram(app.state.rt, stop))
        await serving
        stop.set()
        await polling

    asyncio.run(run_with_polling())
    return 0


async def poll_telegram(rt, stop: asyncio.Event) -> None:
    """Development mode: long-poll the Bot API; every update takes the webhook's path (receive)."""
    from conversations.receive import receive

    channel = rt.channels.get("telegram")
    if channel is None:
        raise SystemExit("--telegram-polling needs ALLERVERS_TELEGRAM_BOT_TOKEN")

    async def handle(body: bytes) -> None:
        for inbound in channel.parse(body):
            received = await receive(rt, inbound)
            if inbound.callback_id:
                await channel.answer_callback(inbound.callback_id, stale=received.stale, locale=inbound.locale)
                await channel.settle_press(inbound.callback_id, accepted=not received.stale)

    await channel.poll(handle, stop)
