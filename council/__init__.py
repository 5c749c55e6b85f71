"""The council: members who deliberate on a turn, and the seam a turn calls (`Responder`)."""

from .replies import EchoResponder, Reply, Responder, Step

__all__ = ["EchoResponder", "Reply", "Responder", "Step"]
