"""Simplified sliding sync (MSC4186): request parsing, the room list, per-room responses and the
per-connection state that lets a `pos` survive a restart. The service is sync/sliding/service.py.
"""
