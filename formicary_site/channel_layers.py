"""The in-process channel layer of the standalone product.

Channels' ``InMemoryChannelLayer`` is not thread-safe: a ``group_send`` from the queen's thread puts
the message on an asyncio queue of the web server's loop without waking that loop, so a browser
would see a lifecycle event only when something else woke the loop. And a ``group_send`` walks
the layer's channel and group dicts, which that loop changes as pages come and go: from another
thread the walk can meet a dict changing size, and the event is lost. This layer runs sends and
group sends from other threads on the receivers' loop.
"""

import asyncio
from collections.abc import Coroutine
from typing import Any

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _receiver_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel: str) -> Any:
        self._receiver_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def _on_receivers_loop(self, step: Coroutine[Any, Any, None]) -> None:
        """Run ``step`` on the receivers' loop when the caller runs on another (another thread)."""
        loop = self._receiver_loop
        if loop is not None and loop is not asyncio.get_running_loop() and loop.is_running():
            await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(step, loop))
        else:
            await step

    async def send(self, channel: str, message: dict) -> None:
        await self._on_receivers_loop(super().send(channel, message))

    async def group_send(self, group: str, message: dict) -> None:
        await self._on_receivers_loop(super().group_send(group, message))
