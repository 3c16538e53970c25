"""The in-process channel layer of the standalone product.

Channels' ``InMemoryChannelLayer`` is not thread-safe: a ``group_send`` from the queen's thread puts
the message on an asyncio queue of the web server's loop without waking that loop, so a browser
would see a lifecycle event only when something else woke the loop. And a ``group_send`` walks
the layer's channel and group dicts, which that loop changes as pages come and go: from another
thread the walk can meet a dict changing size, and the event is lost. This layer runs sends and
group sends from other threads on the receivers' loop.
"""

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _receiver_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel: str) -> Any:
        self._receiver_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    def _other_loop(self) -> asyncio.AbstractEventLoop | None:
        """The receivers' loop when the caller runs on another one (another thread)."""
        loop = self._receiver_loop
        if loop is not None and loop is not asyncio.get_running_loop() and loop.is_running():
            return loop
        return None

    async def send(self, channel: str, message: dict) -> None:
        loop = self._other_loop()
        if loop is None:
            await super().send(channel, message)
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(super().send(channel, message), loop))

    async def group_send(self, group: str, message: dict) -> None:
        loop = self._other_loop()
        if loop is None:
            await super().group_send(group, message)
            return
        await asyncio.wrap_future(asyncio.run_coroutine_threadsafe(super().group_send(group, message), loop))
