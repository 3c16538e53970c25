"""The in-process channel layer of the standalone product.

Channels' ``InMemoryChannelLayer`` is not thread-safe: a ``group_send`` from the queen's thread puts
the message on an asyncio queue of the web server's loop without waking that loop, so a browser
would see a lifecycle event only when something else woke the loop. This layer hands sends from
other threads to the receivers' loop.
"""

import asyncio
from typing import Any

from channels.layers import InMemoryChannelLayer


class ThreadSafeInMemoryChannelLayer(InMemoryChannelLayer):
    _receiver_loop: asyncio.AbstractEventLoop | None = None

    async def receive(self, channel: str) -> Any:
        self._receiver_loop = asyncio.get_running_loop()
        return await super().receive(channel)

    async def send(self, channel: str, message: dict) -> None:
        loop = self._receiver_loop
        if loop is not None and loop is not asyncio.get_running_loop() and loop.is_running():
            future = asyncio.run_coroutine_threadsafe(super().send(channel, message), loop)
            await asyncio.wrap_future(future)
            return
        await super().send(channel, message)
