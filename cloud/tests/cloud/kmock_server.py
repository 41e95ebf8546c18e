"""A Kubernetes API emulator (PyPI `kmock`) on a loopback port, for the pipeline's Kubernetes
executor tests. Usage: python kmock_server.py PORT. Prints `listening PORT` once it serves.

kmock keeps objects in memory and serves create/get/list/watch/patch/delete; like a real API
server, this wrapper stamps `uid`, `resourceVersion` and `creationTimestamp` on created objects
(owner references need the parent's uid), answers errors with the standard reasons
(`NotFound`, `AlreadyExists`), and serves a pod's `log` subresource as the pod's
`metadata.annotations["test/log"]` text (the emulator has no kubelet to ask)."""

import asyncio
import datetime
import itertools
import sys
import uuid

import kmock

_versions = itertools.count(1)


class Emulator(kmock.KubernetesEmulator):
    async def _handle(self, request):
        if request.action == kmock.action.CREATE and isinstance(request.data, dict):
            meta = request.data.setdefault("metadata", {})
            meta["uid"] = str(uuid.uuid4())
            meta["creationTimestamp"] = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if request.action in (kmock.action.CREATE, kmock.action.UPDATE) and isinstance(request.data, dict):
            request.data.setdefault("metadata", {})["resourceVersion"] = str(next(_versions))
        return await super()._handle(request)

    async def _render_error(self, exc):
        # A real API server's reasons (`NotFound`, `AlreadyExists`), which clients rely on.
        if isinstance(exc, kmock.KubernetesError) and exc.status in REASONS:
            exc = kmock.KubernetesError(status=exc.status, reason=REASONS[exc.status], message=exc.message)
        return await super()._render_error(exc)


REASONS = {404: "NotFound", 409: "AlreadyExists"}


async def main(port: int) -> None:
    emulator = Emulator()
    emulator.resources["batch/v1/jobs"] = kmock.ResourceInfo(kind="Job", namespaced=True)
    emulator.resources["v1/pods"] = kmock.ResourceInfo(kind="Pod", namespaced=True)
    emulator.resources["v1/configmaps"] = kmock.ResourceInfo(kind="ConfigMap", namespaced=True)

    async def pod_log(request):
        key = (kmock.resource("v1/pods"), request.namespace, request.name)
        if key not in emulator.objects or emulator.objects[key].deleted:
            raise kmock.KubernetesObjectNotFoundError()
        return emulator.objects[key].raw.get("metadata", {}).get("annotations", {}).get("test/log", "").encode()

    emulator["get", kmock.subresource("log")] << pod_log
    async with emulator, kmock.Server(emulator, port=port):
        print(f"listening {port}", flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1])))
