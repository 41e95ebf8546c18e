#!/usr/bin/env python3
"""Independent OPC UA server for the moldops tests, built on asyncua (not on our code).

Serves the nodes of one or more moldops node maps (TOML, the format of `[devices.opcua.profile]`)
at opc.tcp://127.0.0.1:PORT/moldops/ with security None (or Basic256Sha256, --secure), and acts as a machine making shots:
for shot n it writes every value node first (node j of a map gets 1 + 1.5 j + 0.125 (n mod 10),
exact in binary), the mold code and the cycle time stamp, and the cycle counter last, then
prints `SHOT {"n": n, "values": {...}}` on stdout (engineering values: raw × scale + offset, as
the edge computes them). Namespace URIs named with `nsu=` are registered in order of appearance
after urn:moldops:peer (index 2).

A node given as a browse path (`/alias:Name/…`, `.` too; `&` escapes; no `<…>`) is served as
an object tree with those browse names, in the namespaces of the map's `[namespaces]` aliases
(and --alias), under the --root path from the Objects folder; intermediate objects and the
variable get numeric ids in urn:moldops:peer counting from --id-base. Those namespaces are
registered after urn:moldops:peer and --pad-namespaces dummy ones, in reverse alias order.

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
  --root PATH        browse path (from Objects) of the object the map's browse paths start at
  --alias A=URI      a namespace alias for browse paths besides the map's (repeatable)
  --id-base N        first numeric id of browse-path nodes (default 5000)
  --pad-namespaces K register K dummy namespaces first: the real ones get other indexes
  --secure CERT:KEY  offer only Basic256Sha256 with Sign and SignAndEncrypt (no security None),
                     with this server certificate (DER) and private key (PEM); the
                     certificate's application URI must be urn:moldops:peer

Prints READY once it listens, then `NODES {"namespaces": [...], "ids": {name: node id}}`.
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


def is_path(text):
    return text.lstrip().startswith(("/", "."))


def parse_path(text):
    """[(alias or None, name)] of a browse path in the edge's text format (no <…> references)."""
    text = text.strip()
    elements, i = [], 0
    while i < len(text):
        if text[i] not in "/.":
            raise SystemExit(f"peer: unsupported browse path {text!r}")
        i += 1
        alias, name = None, ""
        while i < len(text) and text[i] not in "/.<":
            ch = text[i]
            if ch == "&":
                name += text[i + 1]
                i += 2
                continue
            if ch == ":" and alias is None:
                alias, name = name, ""
            else:
                name += ch
            i += 1
        elements.append((alias, name))
    return elements


COUNTER_TYPES = {"u16": ua.VariantType.UInt16, "u64": ua.VariantType.UInt64}


def role_of(profile, name):
    for role in ("shot_counter", "timestamp", "mold_code", "state"):
        if profile.get(role) == name:
            return role
    return "value"


def initial(role, j, last, counter_type=ua.VariantType.UInt32):
    if role == "shot_counter":
        return ua.Variant(last % 2**32, counter_type)
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
    p.add_argument("--root", default="")
    p.add_argument("--alias", action="append", default=[])
    p.add_argument("--id-base", type=int, default=5000)
    p.add_argument("--pad-namespaces", type=int, default=0)
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
    for k in range(a.pad_namespaces):
        await server.register_namespace(f"urn:moldops:pad:{k}")
    aliases = dict(alias.split("=", 1) for alias in a.alias)
    for m in maps:
        aliases = {**m.get("namespaces", {}), **aliases}
    for alias in sorted(aliases, reverse=True):
        if aliases[alias] not in namespaces:
            namespaces[aliases[alias]] = await server.register_namespace(aliases[alias])
    for m in maps:
        for n in m["nodes"]:
            if n["node"].startswith("nsu="):
                uri = n["node"][4:].split(";", 1)[0]
                if uri not in namespaces:
                    namespaces[uri] = await server.register_namespace(uri)

    folder = await server.nodes.objects.add_folder(ua.NodeId("Machine", 2), "2:Machine")
    last = a.start - 1
    nodes = []  # (role, j, name, var, scale, offset)
    seen = set()
    next_id = [a.id_base]
    tree = {(): server.nodes.objects}

    def qualified(alias, name):
        return ua.QualifiedName(name, 0 if alias is None else namespaces[aliases[alias]])

    async def child(parent_key, element, variable=None):
        key = parent_key + (element,)
        if key not in tree:
            nid = ua.NodeId(next_id[0], 2)
            next_id[0] += 1
            parent = tree[parent_key]
            if variable is None:
                tree[key] = await parent.add_object(nid, qualified(*element))
            else:
                tree[key] = await parent.add_variable(nid, qualified(*element), variable)
        return key

    root = ()
    for element in parse_path(a.root) if a.root else []:
        root = await child(root, element)
    for m in maps:
        for j, n in enumerate(m["nodes"]):
            text = n["node"]
            role = role_of(m, n["name"])
            scale, offset = n.get("scale", 1.0), n.get("offset", 0.0)
            if is_path(text):
                *parents, leaf = parse_path(text)
                key = root
                for element in parents:
                    key = await child(key, element)
                counter_type = COUNTER_TYPES.get(n.get("type"), ua.VariantType.UInt32)
                key = await child(key, leaf, initial(role, j, last, counter_type))
                nodes.append((role, j, n["name"], tree[key], scale, offset, counter_type))
                continue
            if text.startswith("nsu="):
                uri, rest = text[4:].split(";", 1)
                text = f"ns={namespaces[uri]};{rest}"
            nid = ua.NodeId.from_string(text)
            if nid in seen:
                continue
            seen.add(nid)
            var = await folder.add_variable(nid, ua.QualifiedName(n["name"], nid.NamespaceIndex), initial(role, j, last))
            nodes.append((role, j, n["name"], var, scale, offset, ua.VariantType.UInt32))

    client_seen = asyncio.Event()

    counters = {t[3].nodeid for t in nodes if t[0] == "shot_counter"}

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
        ids = {t[2]: t[3].nodeid.to_string() for t in nodes}
        array = await server.get_namespace_array()
        print("NODES " + json.dumps({"namespaces": array, "ids": ids}), flush=True)
        if a.wait_client:
            await client_seen.wait()
        for k in range(a.shots):
            await asyncio.sleep(a.every)
            n = a.start + k
            values = {}
            for role, j, name, var, scale, offset, counter_type in nodes:
                if role == "shot_counter":
                    await var.write_value(ua.Variant(n % 2**32, counter_type))
                elif role == "timestamp":
                    now = datetime.datetime.now(datetime.timezone.utc)
                    await var.write_value(ua.Variant(now, ua.VariantType.DateTime))
                elif role == "value":
                    values[name] = value(j, n) * scale + offset
                    await var.write_value(ua.Variant(value(j, n), ua.VariantType.Double))
            print("SHOT " + json.dumps({"n": n, "values": values}), flush=True)
        await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main())
