#!/usr/bin/env node
// Independent EUROMAP-77-shaped OPC UA server on node-opcua for the moldops e2e tests (not on
// our code, nor on asyncua): the same address space tests/peers/opcua_server.py serves for a node
// map by browse path, under other node ids (strings in the vendor namespace) and another
// namespace order, so one node map by browse path must work on both.
//
// Serves the browse-path nodes of one node map (given as JSON: the TOML map converted) at
// opc.tcp://127.0.0.1:PORT/moldops/ with security None, anonymous, and acts as a machine making
// shots like opcua_server.py: for shot n every value node j of the map gets raw value
// 1 + 1.5 j + 0.125 (n mod 10), the cycle time stamp is set to now and the cycle counter to n,
// last, all in one synchronous step; then it prints
// `SHOT {"n": n, "values": {name: raw × scale + offset}}` on stdout.
//
//   --port P            listen port (required)
//   --map FILE          node map as JSON (required); its `namespaces` aliases name namespaces
//   --root PATH         browse path from Objects of the object the map's paths start at
//   --alias A=URI       another namespace alias (repeatable), e.g. the vendor's namespace
//   --start N           first shot is N; the counter starts at N-1 (N = 1: null time stamp)
//   --shots K           make K shots, then keep serving
//   --every S           seconds between shots
//   --wait-client       no shot before a client has created a subscription
//   --max-translate N   state MaxNodesPerTranslateBrowsePathsToNodeIds = N (and enforce it)
//   --pki DIR           the server's certificate folder (default: a temporary one)
//
// Prints READY once it listens, then `NODES {"namespaces": [...], "ids": {name: node id}}`.
"use strict";

const fs = require("fs");
const os = require("os");
const path = require("path");
const { OPCUAServer } = require("node-opcua-server");
const { Variant, DataType, VariantArrayType } = require("node-opcua-variant");
const { SecurityPolicy, MessageSecurityMode } = require("node-opcua-secure-channel");
const { OPCUACertificateManager } = require("node-opcua-certificate-manager");

function parseArgs(argv) {
  const a = { alias: [], start: 1, shots: 0, every: 0.3, waitClient: false, root: "", maxTranslate: 0 };
  for (let i = 0; i < argv.length; i++) {
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${argv[i]} needs a value`);
      return argv[++i];
    };
    switch (argv[i]) {
      case "--port": a.port = Number(next()); break;
      case "--map": a.map = next(); break;
      case "--root": a.root = next(); break;
      case "--alias": a.alias.push(next()); break;
      case "--start": a.start = Number(next()); break;
      case "--shots": a.shots = Number(next()); break;
      case "--every": a.every = Number(next()); break;
      case "--wait-client": a.waitClient = true; break;
      case "--max-translate": a.maxTranslate = Number(next()); break;
      case "--pki": a.pki = next(); break;
      default: throw new Error(`unknown argument ${argv[i]}`);
    }
  }
  if (!a.port || !a.map) throw new Error("--port and --map are required");
  return a;
}

/** [[alias or null, name]] of a browse path in the edge's text format (no <…> references). */
function parsePath(text) {
  text = text.trim();
  const elements = [];
  let i = 0;
  while (i < text.length) {
    if (text[i] !== "/" && text[i] !== ".") throw new Error(`unsupported browse path ${text}`);
    i++;
    let alias = null;
    let name = "";
    while (i < text.length && !"/.<".includes(text[i])) {
      const ch = text[i];
      if (ch === "&") {
        name += text[i + 1];
        i += 2;
        continue;
      }
      if (ch === ":" && alias === null) {
        alias = name;
        name = "";
      } else {
        name += ch;
      }
      i++;
    }
    elements.push([alias, name]);
  }
  return elements;
}

function roleOf(map, name) {
  for (const role of ["shot_counter", "timestamp", "mold_code", "state"]) {
    if (map[role] === name) return role;
  }
  return "value";
}

const value = (j, n) => 1.0 + 1.5 * j + 0.125 * (n % 10);
const sleep = (s) => new Promise((r) => setTimeout(r, s * 1000));
const NULL_TIME = new Date(Date.UTC(1601, 0, 1));

async function main() {
  const a = parseArgs(process.argv.slice(2));
  const map = JSON.parse(fs.readFileSync(a.map, "utf8"));
  const aliases = { ...(map.namespaces || {}) };
  for (const spec of a.alias) {
    const at = spec.indexOf("=");
    aliases[spec.slice(0, at)] = spec.slice(at + 1);
  }
  const pki = a.pki || fs.mkdtempSync(path.join(os.tmpdir(), "moldops-node-opcua-"));
  const operationLimits = a.maxTranslate > 0 ? { maxNodesPerTranslateBrowsePathsToNodeIds: a.maxTranslate } : {};
  const server = new OPCUAServer({
    port: a.port,
    hostname: "127.0.0.1",
    resourcePath: "/moldops/",
    securityPolicies: [SecurityPolicy.None],
    securityModes: [MessageSecurityMode.None],
    allowAnonymous: true,
    serverCertificateManager: new OPCUACertificateManager({
      rootFolder: path.join(pki, "server"),
      automaticallyAcceptUnknownCertificate: true,
    }),
    userCertificateManager: new OPCUACertificateManager({
      rootFolder: path.join(pki, "user"),
      automaticallyAcceptUnknownCertificate: true,
    }),
    serverCapabilities: { operationLimits },
    buildInfo: { productName: "moldops node-opcua test peer" },
  });
  await server.initialize();
  const space = server.engine.addressSpace;

  // Registered in alias order (asyncua's peer uses the reverse), after the server's own.
  const namespaces = {};
  for (const alias of Object.keys(aliases).sort()) {
    const uri = aliases[alias];
    namespaces[uri] = space.getNamespace(uri) || space.registerNamespace(uri);
  }
  const own = space.getOwnNamespace();
  const vendor = aliases.vendor ? namespaces[aliases.vendor] : own;
  const qualified = ([alias, name]) => ({
    namespaceIndex: alias === null ? 0 : namespaces[aliases[alias]].index,
    name,
  });

  // The object tree; string node ids in the vendor namespace, unlike asyncua's numbers.
  const tree = new Map([["", space.rootFolder.objects]]);
  let next = 0;
  const id = () => `ns=${vendor.index};s=EM77-${(next++).toString(36)}`;
  const child = (parentKey, element, variable) => {
    const key = `${parentKey}\u0000${element[0]}:${element[1]}`;
    if (!tree.has(key)) {
      const parent = tree.get(parentKey);
      const link = parentKey === "" ? { organizedBy: parent } : { componentOf: parent };
      const options = { ...link, browseName: qualified(element), nodeId: id() };
      tree.set(key, variable ? vendor.addVariable({ ...options, ...variable }) : vendor.addObject(options));
    }
    return key;
  };

  let root = "";
  for (const element of a.root ? parsePath(a.root) : []) root = child(root, element);
  const last = a.start - 1;
  const nodes = [];
  map.nodes.forEach((n, j) => {
    const role = roleOf(map, n.name);
    const elements = parsePath(n.node);
    let key = root;
    for (const element of elements.slice(0, -1)) key = child(key, element);
    const counterType = n.type === "u64" ? DataType.UInt64 : n.type === "u16" ? DataType.UInt16 : DataType.UInt32;
    const [dataType, initial] = {
      shot_counter: [counterType, last],
      timestamp: [DataType.DateTime, last === 0 ? NULL_TIME : new Date()],
      mold_code: [DataType.String, "M-OPCUA-1"],
    }[role] || [DataType.Double, value(j, last)];
    const variant = (v) =>
      dataType === DataType.UInt64
        ? new Variant({ dataType, arrayType: VariantArrayType.Scalar, value: [0, v] })
        : new Variant({ dataType, value: v });
    key = child(key, elements[elements.length - 1], { dataType, value: variant(initial) });
    nodes.push({ role, j, name: n.name, node: tree.get(key), variant, scale: n.scale ?? 1.0, offset: n.offset ?? 0.0 });
  });

  await server.start();
  console.log("READY");
  const ids = Object.fromEntries(nodes.map((n) => [n.name, n.node.nodeId.toString()]));
  console.log("NODES " + JSON.stringify({ namespaces: space.getNamespaceArray().map((ns) => ns.namespaceUri), ids }));

  if (a.waitClient) {
    while (server.engine.currentSubscriptionCount === 0) await sleep(0.05);
    await sleep(0.2); // its monitored items follow the subscription
  }
  const order = { value: 0, state: 1, mold_code: 1, timestamp: 2, shot_counter: 3 };
  nodes.sort((x, y) => order[x.role] - order[y.role]);
  for (let k = 0; k < a.shots; k++) {
    await sleep(a.every);
    const n = a.start + k;
    const values = {};
    for (const x of nodes) {
      if (x.role === "shot_counter") x.node.setValueFromSource(x.variant(n % 2 ** 32));
      else if (x.role === "timestamp") x.node.setValueFromSource(x.variant(new Date()));
      else if (x.role === "value") {
        values[x.name] = value(x.j, n) * x.scale + x.offset;
        x.node.setValueFromSource(x.variant(value(x.j, n)));
      }
    }
    console.log("SHOT " + JSON.stringify({ n, values }));
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
