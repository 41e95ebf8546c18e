#!/usr/bin/env python3
"""Independent Modbus peer for the moldops tests, built on pymodbus (not on our code).

Serves one device (unit id 1) whose holding registers hold known values, encoded here with
Python's struct module in both word orders, so the edge's decoding is checked against an
implementation that shares nothing with it:

  0-1   shot counter, u32 ABCD           = SHOT (default 7)
  10-11 f32 ABCD  123.456                12-13 f32 CDAB  123.456
  14-15 f32 ABCD  -0.5                   16-17 f32 CDAB  -0.5
  20-23 f64 ABCD  1234.5678              24-27 f64 DCBA-words (little word order) 1234.5678
  30    i16 -10 (scaled by the profile)  31-34 ASCII "MOLD-X" (space padded, 4 registers)
  35-37 ASCII "PA6-GF" (material, 3 registers)

Usage: modbus_peer.py tcp PORT | rtu DEVICE [BAUD [PARITY N|E|O [UNITS]]]
(pseudo-terminals accept no parity setting from pyserial: use N over a socat pty pair).
UNITS, e.g. `1,2`: the unit ids answered on the line (RS-485 multi-drop), each with the same
registers; requests to any other unit id get no answer, like a dead device on the line.
"""
import asyncio
import struct
import sys

from pymodbus.server import ModbusSerialServer, ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice


def words_be(fmt, value):
    raw = struct.pack(">" + fmt, value)
    return [int.from_bytes(raw[i:i + 2], "big") for i in range(0, len(raw), 2)]


def image(shot):
    regs = [0] * 40
    regs[0:2] = words_be("I", shot)
    regs[10:12] = words_be("f", 123.456)
    regs[12:14] = list(reversed(words_be("f", 123.456)))
    regs[14:16] = words_be("f", -0.5)
    regs[16:18] = list(reversed(words_be("f", -0.5)))
    regs[20:24] = words_be("d", 1234.5678)
    regs[24:28] = list(reversed(words_be("d", 1234.5678)))
    regs[30] = words_be("h", -10)[0]
    text = b"MOLD-X".ljust(8, b" ")
    regs[31:35] = [int.from_bytes(text[i:i + 2], "big") for i in range(0, 8, 2)]
    material = b"PA6-GF".ljust(6, b"\0")
    regs[35:38] = [int.from_bytes(material[i:i + 2], "big") for i in range(0, 6, 2)]
    return regs


async def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("tcp", "rtu"):
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    shot = 7
    units = [int(u) for u in sys.argv[5].split(",")] if len(sys.argv) > 5 else [1]
    devices = [SimDevice(id=u, simdata=[SimData(address=0, values=image(shot), datatype=DataType.REGISTERS)])
               for u in units]
    device = devices[0] if len(devices) == 1 else devices
    if sys.argv[1] == "tcp":
        server = ModbusTcpServer(device, address=("127.0.0.1", int(sys.argv[2])))
    else:
        baud = int(sys.argv[3]) if len(sys.argv) > 3 else 19200
        parity = sys.argv[4] if len(sys.argv) > 4 else "E"
        def silent_to_others(sending, packet):
            # A unit id nobody answers to stays silent, as a dead device on the line does
            # (pymodbus itself would answer with an exception).
            return b"" if sending and packet and packet[0] not in units else packet

        server = ModbusSerialServer(device, port=sys.argv[2], baudrate=baud, parity=parity, stopbits=1, bytesize=8,
                                    trace_packet=silent_to_others)
    print("READY", flush=True)
    await server.serve_forever()


if __name__ == "__main__":
    asyncio.run(main())
