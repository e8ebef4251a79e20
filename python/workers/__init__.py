"""Cairn's ``workers`` module: the classes Cloudflare's Python Workers import (SPEC §11.4)."""

import json as _json


class WorkflowEntrypoint:
    """Base class of a Python workflow: ``async def run(self, event, step)``."""

    def __init__(self, ctx=None, env=None):
        self.ctx = ctx
        self.env = env


class WorkerEntrypoint:
    """Base class of the project's HTTP handler (``Default.fetch``)."""

    def __init__(self, ctx=None, env=None):
        self.ctx = ctx
        self.env = env


class DurableObject:
    def __init__(self, *args, **kwargs):
        raise NotImplementedError("Durable Objects in Python are not supported by Cairn")


class Response:
    """An HTTP response: ``Response(body, status=200, headers=None)``."""

    def __init__(self, body=None, status=200, headers=None):
        if isinstance(body, str):
            body = body.encode("utf-8")
        elif body is None:
            body = b""
        elif not isinstance(body, (bytes, bytearray)):
            raise TypeError("Response body must be str, bytes or None")
        self.body = bytes(body)
        self.status = int(status)
        self.headers = dict(headers or {})

    @classmethod
    def json(cls, data, status=200, headers=None):
        h = {"content-type": "application/json"}
        h.update(headers or {})
        return cls(_json.dumps(data), status=status, headers=h)


class Request:
    """An HTTP request as ``Default.fetch`` receives it."""

    def __init__(self, method, url, headers=None, body=b""):
        self.method = method
        self.url = url
        self.headers = dict(headers or {})
        self._body = body

    async def text(self):
        return self._body.decode("utf-8")

    async def json(self):
        return _json.loads(self._body.decode("utf-8"))

    async def bytes(self):
        return self._body


__all__ = ["WorkflowEntrypoint", "WorkerEntrypoint", "DurableObject", "Response", "Request"]
