"""What a queen's pipelines share: its transport, its view of the ants, its render worker and
its memory of waiting tasks (one object, so the pipelines import no engine)."""

from dataclasses import dataclass, field

from ants.messaging.base import Transport
from jobs.queen.render_pool import RenderPool
from jobs.queen.resources import ResourceManager
from jobs.queen.waiting import TaskWaits


@dataclass
class QueenParts:
    transport: Transport
    resources: ResourceManager
    renders: RenderPool
    waits: TaskWaits = field(default_factory=TaskWaits)
