"""The long-running service of ``beatx run``: the asyncio scheduler until SIGTERM or SIGINT."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import signal
from typing import TYPE_CHECKING

from beatx.cli.django_setup import is_django_url, setup_django
from beatx.cli.render import _count_by_status
from beatx.cli.target import add_config_directory_to_path
from beatx.errors import ConfigurationError

if TYPE_CHECKING:
    from beatx.cli.target import Target
    from beatx.stores.base import JobStore

logger = logging.getLogger("beatx.cli")


async def _serve(
    path: str, target: Target, metrics_port: int | None, metrics_addr: str, shutdown_timeout: float
) -> None:
    from beatx.config import SchedulerConfig
    from beatx.scheduler import Scheduler
    from beatx.stores import open_store

    add_config_directory_to_path(path)
    config = SchedulerConfig.from_yaml(path)
    if is_django_url(config.store_url):
        setup_django(config.store_url)
    if target.timezone:
        config = dataclasses.replace(config, timezone=target.timezone)
    store = None
    if target.key_prefix:
        store = open_store(config.store_url, key_prefix=target.key_prefix)
    scheduler = Scheduler(config, store=store)
    metrics = None
    if metrics_port is not None:
        from beatx.metrics import BeatxMetrics

        metrics = BeatxMetrics(scheduler.events, jobs_by_status=lambda: _count_by_status(scheduler.store))
        try:
            port = metrics.start_http_server(metrics_port, metrics_addr)
        except OSError as exc:
            raise ConfigurationError(
                f"metrics: cannot listen on {metrics_addr}:{metrics_port}: {exc}"
            ) from exc
        logger.info("metrics on http://%s:%d/metrics", metrics_addr, port)

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            logger.info("received %s; shutting down", signal.Signals(signum).name)
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, on_signal, signum)
    try:
        # Fail fast, with exit code 3, when the store is unreachable at start-up; later
        # outages are retried by the beat.
        await asyncio.to_thread(scheduler.store.next_run_time)
        await scheduler.start()
        logger.info(
            "beatx running: config=%s store=%s", path, _describe_store(scheduler.store, config.store_url)
        )
        await stop.wait()
        await scheduler.shutdown(wait=True, timeout=shutdown_timeout)
    finally:
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        if metrics is not None:
            metrics.close()
        scheduler.store.close()


def _describe_store(store: JobStore, url: str) -> str:
    from beatx.stores.memory import MemoryStore

    # RedisStore's repr hides the password of its URL.
    return url if isinstance(store, MemoryStore) else repr(store)
