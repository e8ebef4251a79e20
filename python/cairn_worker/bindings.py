"""Workflow bindings from Python (``self.env.CHECKOUT``): objects that call Cairn's HTTP API."""

import asyncio
import urllib.parse


def _q(s):
    return urllib.parse.quote(str(s), safe="")


class Instance:
    def __init__(self, http, workflow, id):
        self._http = http
        self._workflow = workflow
        self.id = id

    def _path(self, tail=""):
        return f"/workflows/{_q(self._workflow)}/instances/{_q(self.id)}{tail}"

    async def status(self):
        return await asyncio.to_thread(self._http.request, "GET", self._path())

    async def _change(self, status):
        await asyncio.to_thread(self._http.request, "PATCH", self._path("/status"), {"status": status})

    async def pause(self):
        await self._change("pause")

    async def resume(self):
        await self._change("resume")

    async def terminate(self):
        await self._change("terminate")

    async def restart(self):
        await self._change("restart")

    async def send_event(self, type=None, payload=None, **kwargs):
        if isinstance(type, dict):
            payload = type.get("payload")
            type = type.get("type")
        type = kwargs.get("type", type)
        await asyncio.to_thread(self._http.request, "POST", self._path(f"/events/{_q(type)}"), payload)


class Binding:
    def __init__(self, http, workflow):
        self._http = http
        self._workflow = workflow

    @staticmethod
    def _options(options, id, params):
        if isinstance(options, dict):
            id = options.get("id", id)
            params = options.get("params", params)
        body = {}
        if id is not None:
            body["instance_id"] = id
        if params is not None:
            body["params"] = params
        return body

    async def create(self, options=None, *, id=None, params=None):
        body = self._options(options, id, params)
        r = await asyncio.to_thread(
            self._http.request, "POST", f"/workflows/{_q(self._workflow)}/instances", body
        )
        return Instance(self._http, self._workflow, r["id"])

    async def create_batch(self, batch):
        body = [self._options(b, None, None) for b in batch]
        r = await asyncio.to_thread(
            self._http.request, "POST", f"/workflows/{_q(self._workflow)}/instances/batch", body
        )
        return [Instance(self._http, self._workflow, x["id"]) for x in r]

    async def get(self, id):
        inst = Instance(self._http, self._workflow, id)
        await inst.status()
        return inst


class Env:
    """``self.env``: the configuration's vars and ``.dev.vars`` secrets, and workflow bindings by
    binding name (``self.env.API_KEY``, ``self.env.CHECKOUT``; also ``self.env["API_KEY"]``)."""

    def __init__(self, http, workflows, vars=None):
        for k, v in (vars or {}).items():
            setattr(self, k, v)
        for w in workflows:
            if w.get("binding"):
                setattr(self, w["binding"], Binding(http, w["name"]))

    def __getitem__(self, name):
        try:
            return getattr(self, name)
        except AttributeError:
            raise KeyError(name) from None

    def __contains__(self, name):
        return hasattr(self, name)
