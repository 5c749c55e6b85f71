"""RQ's Job, limited to the functions this worker serves.

RQ runs whatever importable callable a job names (`os.system` included), and its callbacks too:
anyone who can write to Redis could run code on the GPU machines. A voice worker runs Council's
job functions (`queues.functions`) and those an operator adds with WORKER_EXTRA_FUNCTIONS; any
other job fails as data with `invalid_payload`, and its callbacks are not imported.
"""

from typing import Any, ClassVar

from rq.job import Job

from queues import functions
from shared_schemas import ErrorCode

from .errors import VoiceError


class GuardedJob(Job):
    allowed: ClassVar[frozenset[str]] = frozenset(functions.ALL)

    @classmethod
    def allowing(cls, extra: tuple[str, ...]) -> type["GuardedJob"]:
        """The job class of a worker that also runs `extra`."""
        return type("GuardedJob", (cls,), {"allowed": cls.allowed | frozenset(extra)})

    @property
    def func(self) -> Any:
        if self.repeats_left:
            # The lean worker's finish path does not schedule repeats (lean.py): say so, not drop it.
            raise VoiceError(
                ErrorCode.INVALID_PAYLOAD,
                "Council's workers do not repeat jobs (RQ's Repeat): enqueue each run as its own job.",
            )
        if self.func_name not in self.allowed or self.instance is not None:
            served = ", ".join(sorted(self.allowed))
            raise VoiceError(
                ErrorCode.INVALID_PAYLOAD,
                f"This worker runs only {served}; the job asked for {self.func_name!r}. An operator can "
                "allow more functions with WORKER_EXTRA_FUNCTIONS.",
            )
        return super().func

    # Callbacks are functions too: only allowed ones are imported.
    @property
    def success_callback(self) -> Any:
        return super().success_callback if self._success_callback_name in self.allowed else None

    @property
    def failure_callback(self) -> Any:
        return super().failure_callback if self._failure_callback_name in self.allowed else None

    @property
    def stopped_callback(self) -> Any:
        return super().stopped_callback if self._stopped_callback_name in self.allowed else None
