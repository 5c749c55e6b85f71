"""Placeholder: the batch transcription API is being written."""

routes: list = []
