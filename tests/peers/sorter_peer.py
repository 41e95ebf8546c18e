#!/usr/bin/env python3
"""A sorting output for the quality-gate tests, built on pymodbus (not on our code).

Serves unit 1 over Modbus TCP with 100 holding registers and logs every write it receives, as
one JSON line on stdout: {"fc": function code, "address": first address, "values": [...]}.
A gate with `kind = "registers"` writes three registers (decision code, shot number high and
low word); with `kind = "coil"`, one coil. Pass `--fail` to answer every write with an
exception (a controller that refuses), `--delay-ms N` to acknowledge each write N ms late.

Usage: sorter_peer.py PORT [--fail] [--delay-ms N]
"""
import asyncio
import json
import sys

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

WRITES = {5, 6, 15, 16}


async def main():
    args = sys.argv[1:]
    if not args:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    port = int(args[0])
    fail = "--fail" in args
    delay = int(args[args.index("--delay-ms") + 1]) / 1000 if "--delay-ms" in args else 0.0

    async def action(function_code, start_address, address, count, current_registers, set_values):
        if function_code not in WRITES or set_values is None:
            return None
        if delay:
            await asyncio.sleep(delay)
        values = [int(v) for v in set_values]
        print(json.dumps({"fc": function_code, "address": address, "values": values}), flush=True)
        return ExcCodes.DEVICE_FAILURE if fail else None

    device = SimDevice(id=1, simdata=[SimData(address=0, values=[0] * 100, datatype=DataType.REGISTERS)], action=action)
    server = ModbusTcpServer(device, address=("127.0.0.1", port))
    print("READY", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
