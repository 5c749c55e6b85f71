"""Listening to streamed microphones: where turns end (`endpointer`), one stream (`listener`), and
a worker's pool of listeners (`pool.Listeners`), which runs beside its job loop."""

from .endpointer import Endpointer, EndpointSettings

__all__ = ["EndpointSettings", "Endpointer"]
