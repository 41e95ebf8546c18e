"""An independent Sparkplug B host for the end-to-end tests: decodes what a moldops edge
publishes with pysparkplug (Eclipse Tahu's protobuf, not our encoder) and asks for a rebirth.

Usage: sparkplug_host.py PORT GROUP NODE OUT.jsonl REBIRTH_AFTER

Subscribes to spBv1.0/GROUP/# on 127.0.0.1:PORT and appends one JSON line per message to
OUT.jsonl: its type, device, seq, timestamp and metrics (name, datatype, value, is_null), and
bdSeq for births and deaths. After REBIRTH_AFTER DDATA messages (0: never) it publishes an
NCMD with `Node Control/Rebirth` = true to NODE, once. Prints {"event": "subscribed"} when ready.
"""

import json
import sys
import time

import pysparkplug as spb
from paho.mqtt import client as paho


def main() -> None:
    port, group, node, out_path, rebirth_after = (
        int(sys.argv[1]),
        sys.argv[2],
        sys.argv[3],
        sys.argv[4],
        int(sys.argv[5]),
    )
    out = open(out_path, "a", encoding="utf-8")
    state = {"ddata": 0, "asked": False}
    client = paho.Client(client_id="sparkplug-host", clean_session=True)

    def on_connect(c, _userdata, _flags, rc):
        assert rc == 0, f"connect failed: {rc}"
        c.subscribe(f"spBv1.0/{group}/#", qos=1)

    def on_subscribe(_c, _userdata, _mid, _granted):
        print(json.dumps({"event": "subscribed"}), flush=True)

    def on_message(c, _userdata, msg):
        try:
            m = spb.Message.from_mqtt_message(msg)
        except Exception as e:  # noqa: BLE001 - every undecodable message is reported
            out.write(json.dumps({"topic": msg.topic, "error": repr(e)}) + "\n")
            out.flush()
            return
        kind = str(m.topic.message_type.value if hasattr(m.topic.message_type, "value") else m.topic.message_type)
        metrics = []
        bd_seq = None
        # A death certificate holds only its bdSeq metric.
        payload_metrics = getattr(m.payload, "metrics", None)
        if payload_metrics is None:
            payload_metrics = (m.payload.bd_seq_metric,)
        for metric in payload_metrics:
            value = metric.value
            if isinstance(value, bytes):
                value = value.hex()
            metrics.append(
                {"name": metric.name, "datatype": int(metric.datatype), "value": value, "is_null": metric.is_null}
            )
            if metric.name == "bdSeq":
                bd_seq = value
        line = {
            "type": kind,
            "node": m.topic.edge_node_id,
            "device": m.topic.device_id,
            "seq": getattr(m.payload, "seq", None),
            "timestamp": m.payload.timestamp,
            "bdSeq": bd_seq,
            "metrics": metrics,
        }
        out.write(json.dumps(line) + "\n")
        out.flush()
        if kind == "DDATA":
            state["ddata"] += 1
            if rebirth_after and state["ddata"] >= rebirth_after and not state["asked"]:
                state["asked"] = True
                now = int(time.time() * 1000)
                rebirth = spb.Metric(
                    timestamp=now, name="Node Control/Rebirth", datatype=spb.DataType.BOOLEAN, value=True
                )
                payload = spb.NCmd(timestamp=now, metrics=(rebirth,))
                c.publish(f"spBv1.0/{group}/NCMD/{node}", payload.encode(include_dtypes=True), qos=1)

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_message = on_message
    client.connect("127.0.0.1", port)
    client.loop_forever()


if __name__ == "__main__":
    main()
