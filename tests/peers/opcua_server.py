#!/usr/bin/env python3
"""Independent OPC UA server for the moldops tests, built on asyncua (not on our code).

Serves the nodes of one or more moldops node maps (TOML, the format of `[devices.opcua.profile]`)
at opc.tcp://127.0.0.1:PORT/moldops/ with security None (or Basic256Sha256, --secure), and acts as a machine making shots:
for shot n it writes every value node first (node j of a map gets 1 + 1.5 j + 0.125 (n mod 10),
exact in binary), the mold code and the cycle time stamp, and the cycle counter last, then
prints `SHOT {"n": n, "values": {...}}` on stdout. Namespace URIs named with `nsu=` are
registered in order of appearance after urn:moldops:peer (index 2).

  --start N          first shot made is N; the server starts as if shot N-1 was the last
                     (N = 1: counter 0, no cycle yet: null time stamp)
  --shots K          make K shots, then keep serving
  --every S          seconds between shots
  --wait-client      make no shot before a client monitors or reads a cycle counter node
                     (it will then see every shot)
  --user U:P         accept only this user name and password (no anonymous)
  --sorter           also serve a sorting output for the edge's quality gate: writable
                     variables ns=2;s=Sorter.Shot (UInt32) and ns=2;s=Sorter.Decision (Int32);
                     each write of the decision prints `WRITE {"shot": s, "decision": d}`
  --secure CERT:KEY  offer only Basic256Sha256 with Sign and SignAndEncrypt (no security None),
                     with this server certificate (DER) and private key (PEM); the
                     certificate's application URI must be urn:moldops:peer

Prints READY once it listens.
"""
import argparse
import asyncio
import datetime
import json
import tomllib

from asyncua import Server, ua
from asyncua.common.callback import CallbackType
from asyncua.crypto.permission_rules import User, UserRole

NULL_TIME = datetime.datetime(1601, 1, 1)


class OneUser:
    def __init__(self, spec):
        self.user, _, self.password = spec.partition(":")

    def get_user(self, iserver, username=None, password=None, certificate=None):
        if username == self.user and password == self.password:
            return User(role=UserRole.User)
        return None


def value(j, n):
    return 1.0 + 1.5 * j + 0.125 * (n % 10)


def role_of(profile, name):
    for role in ("shot_counter", "timestamp", "mold_code", "state"):
        if profile.get(role) == name:
            return role
    return "value"


def initial(role, j, last):
    if role == "shot_counter":
        return ua.Variant(last % 2**32, ua.VariantType.UInt32)
    if role == "timestamp":
        t = NULL_TIME if last == 0 else datetime.datetime.now(datetime.timezone.utc)
        return ua.Variant(t, ua.VariantType.DateTime)
    if role == "mold_code":
        return ua.Variant("M-OPCUA-1", ua.VariantType.String)
    return ua.Variant(value(j, last), ua.VariantType.Double)


async def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--map", action="append", required=True)
    p.add_argument("--start", type=int, default=1)
    p.add_argument("--shots", type=int, default=0)
    p.add_argument("--every", type=float, default=0.3)
    p.add_argument("--wait-client", action="store_true")
    p.add_argument("--user")
    p.add_argument("--secure")
    p.add_argument("--sorter", action="store_true")
    a = p.parse_args()
    maps = []
    for path in a.map:
        with open(path, "rb") as f:
            maps.append(tomllib.load(f))

    server = Server(user_manager=OneUser(a.user) if a.user else None)
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{a.port}/moldops/")
    server.set_server_name("moldops test peer")
    if a.secure:
        cert, _, key = a.secure.partition(":")
        await server.set_application_uri("urn:moldops:peer")
        await server.load_certificate(cert)
        await server.load_private_key(key)
        server.set_security_policy([
            ua.SecurityPolicyType.Basic256Sha256_Sign,
            ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt,
        ])
    else:
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
    if a.user:
        server.set_identity_tokens([ua.UserNameIdentityToken])
    namespaces = {"urn:moldops:peer": await server.register_namespace("urn:moldops:peer")}
    for m in maps:
        for n in m["nodes"]:
            if n["node"].startswith("nsu="):
                uri = n["node"][4:].split(";", 1)[0]
                if uri not in namespaces:
                    namespaces[uri] = await server.register_namespace(uri)

    folder = await server.nodes.objects.add_folder(ua.NodeId("Machine", 2), "2:Machine")
    last = a.start - 1
    nodes = []  # (map, role, j, name, node)
    seen = set()
    for m in maps:
        for j, n in enumerate(m["nodes"]):
            text = n["node"]
            if text.startswith("nsu="):
                uri, rest = text[4:].split(";", 1)
                text = f"ns={namespaces[uri]};{rest}"
            nid = ua.NodeId.from_string(text)
            if nid in seen:
                continue
            seen.add(nid)
            role = role_of(m, n["name"])
            var = await folder.add_variable(nid, ua.QualifiedName(n["name"], nid.NamespaceIndex), initial(role, j, last))
            nodes.append((role, j, n["name"], var))

    client_seen = asyncio.Event()

    counters = {var.nodeid for role, _, _, var in nodes if role == "shot_counter"}

    async def on_item(event, dispatcher):
        if any(i.ItemToMonitor.NodeId in counters for i in event.request_params.ItemsToCreate):
            client_seen.set()

    async def on_read(event, dispatcher):
        if any(r.NodeId in counters for r in event.request_params.NodesToRead):
            client_seen.set()

    if a.sorter:
        sorter = await server.nodes.objects.add_folder(ua.NodeId("Sorter", 2), "2:Sorter")
        shot_var = await sorter.add_variable(ua.NodeId("Sorter.Shot", 2), "2:Shot", ua.Variant(0, ua.VariantType.UInt32))
        decision_var = await sorter.add_variable(
            ua.NodeId("Sorter.Decision", 2), "2:Decision", ua.Variant(0, ua.VariantType.Int32)
        )
        await shot_var.set_writable()
        await decision_var.set_writable()

        async def on_write(event, dispatcher):
            for w, status in zip(event.request_params.NodesToWrite, event.response_params):
                if w.NodeId == decision_var.nodeid and status.is_good():
                    shot = (await shot_var.read_value())
                    print("WRITE " + json.dumps({"shot": shot, "decision": w.Value.Value.Value}), flush=True)

        server.subscribe_server_callback(CallbackType.PostWrite, on_write)

    server.subscribe_server_callback(CallbackType.ItemSubscriptionCreated, on_item)
    server.subscribe_server_callback(CallbackType.PostRead, on_read)
    order = {"value": 0, "state": 1, "mold_code": 1, "timestamp": 2, "shot_counter": 3}
    nodes.sort(key=lambda t: order[t[0]])
    async with server:
        print("READY", flush=True)
        if a.wait_client:
            await client_seen.wait()
        for k in range(a.shots):
            await asyncio.sleep(a.every)
            n = a.start + k
            values = {}
            for role, j, name, var in nodes:
                if role == "shot_counter":
                    await var.write_value(ua.Variant(n % 2**32, ua.VariantType.UInt32))
                elif role == "timestamp":
                    now = datetime.datetime.now(datetime.timezone.utc)
                    await var.write_value(ua.Variant(now, ua.VariantType.DateTime))
                elif role == "value":
                    values[name] = value(j, n)
                    await var.write_value(ua.Variant(values[name], ua.VariantType.Double))
            print("SHOT " + json.dumps({"n": n, "values": values}), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
