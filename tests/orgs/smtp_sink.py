"""An aiosmtpd handler that writes each message it receives to a folder, one ``.eml`` file each:
``python -m aiosmtpd -n -l 127.0.0.1:PORT -c tests.orgs.smtp_sink.FolderSink FOLDER``."""

import os
import time
from pathlib import Path
from typing import Any


class FolderSink:
    def __init__(self, folder: str) -> None:
        self.folder = Path(folder)

    @classmethod
    def from_cli(cls, parser: Any, *args: str) -> "FolderSink":
        if len(args) != 1:
            parser.error("FolderSink takes one argument: the folder")
        return cls(args[0])

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:  # noqa: N802 (aiosmtpd's name)
        name = f"{time.time_ns()}-{os.getpid()}"
        partial = self.folder / f"{name}.part"
        partial.write_bytes(envelope.original_content or envelope.content)
        partial.rename(self.folder / f"{name}.eml")  # whole files only for the reader
        return "250 Message accepted"
