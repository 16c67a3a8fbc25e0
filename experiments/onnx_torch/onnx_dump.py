#!/usr/bin/python3
"""onnx_dump.py -- list an ONNX model's opset, inputs, outputs, initializers
and nodes (op type, name, inputs, outputs, attributes) without the onnx or
protobuf Python packages: a minimal protobuf wire-format reader for the few
ModelProto fields that matter here (field numbers from onnx/onnx.proto).

    /usr/bin/python3 experiments/onnx_torch/onnx_dump.py MODEL.onnx
"""
import struct
import sys


def _varint(b, i):
    v = s = 0
    while True:
        c = b[i]
        i += 1
        v |= (c & 0x7F) << s
        s += 7
        if not c & 0x80:
            return v, i


def _fields(b):
    """(field number, wire type, value) of one message; value is an int for
    varints and fixed, bytes for length-delimited."""
    i, n = 0, len(b)
    while i < n:
        key, i = _varint(b, i)
        f, w = key >> 3, key & 7
        if w == 0:
            v, i = _varint(b, i)
        elif w == 1:
            v = struct.unpack_from("<Q", b, i)[0]
            i += 8
        elif w == 2:
            ln, i = _varint(b, i)
            v = bytes(b[i:i + ln])
            i += ln
        elif w == 5:
            v = struct.unpack_from("<I", b, i)[0]
            i += 4
        else:
            raise ValueError("unsupported wire type %d" % w)
        yield f, w, v


def _s64(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def _ints(w, v):
    if w == 0:
        return [_s64(v)]
    out, i = [], 0
    while i < len(v):
        x, i = _varint(v, i)
        out.append(_s64(x))
    return out


def _attr(b):
    a = {"name": "", "value": None}
    ints, floats = [], []
    for f, w, v in _fields(b):
        if f == 1:
            a["name"] = v.decode()
        elif f == 2:
            a["value"] = struct.unpack("<f", struct.pack("<I", v))[0]
        elif f == 3:
            a["value"] = _s64(v)
        elif f == 4:
            a["value"] = v.decode(errors="replace")
        elif f == 5:
            a["value"] = "<tensor>"
        elif f == 7:
            if w == 5:
                floats.append(struct.unpack("<f", struct.pack("<I", v))[0])
            else:
                floats += list(struct.unpack("<%df" % (len(v) // 4), v))
        elif f == 8:
            ints += _ints(w, v)
    if ints:
        a["value"] = ints
    if floats:
        a["value"] = floats
    return a


def _value_info(b):
    name, dims = "", []
    for f, w, v in _fields(b):
        if f == 1:
            name = v.decode()
        elif f == 2:                               # TypeProto
            for f2, _, v2 in _fields(v):
                if f2 == 1:                        # tensor_type
                    for f3, _, v3 in _fields(v2):
                        if f3 == 2:                # shape
                            for f4, _, v4 in _fields(v3):
                                if f4 == 1:        # dim
                                    for f5, _, v5 in _fields(v4):
                                        dims.append(_s64(v5) if f5 == 1 else v5.decode())
    return {"name": name, "shape": dims}


def summary(path):
    with open(path, "rb") as fh:
        data = fh.read()
    m = {"opset": {}, "producer": "", "inputs": [], "outputs": [],
         "initializers": [], "nodes": []}
    graph = None
    for f, w, v in _fields(data):
        if f == 7:
            graph = v
        elif f == 2:
            m["producer"] = v.decode()
        elif f == 3:
            m["producer"] += " " + v.decode()
        elif f == 1:
            m["ir_version"] = v
        elif f == 8:
            dom, ver = "", 0
            for f2, _, v2 in _fields(v):
                if f2 == 1:
                    dom = v2.decode()
                elif f2 == 2:
                    ver = v2
            m["opset"][dom or "ai.onnx"] = ver
    for f, w, v in _fields(graph or b""):
        if f == 1:
            n = {"op_type": "", "name": "", "inputs": [], "outputs": [], "attributes": {}}
            for f2, _, v2 in _fields(v):
                if f2 == 1:
                    n["inputs"].append(v2.decode())
                elif f2 == 2:
                    n["outputs"].append(v2.decode())
                elif f2 == 3:
                    n["name"] = v2.decode()
                elif f2 == 4:
                    n["op_type"] = v2.decode()
                elif f2 == 5:
                    a = _attr(v2)
                    n["attributes"][a["name"]] = a["value"]
            m["nodes"].append(n)
        elif f == 5:
            name, dims = "", []
            for f2, w2, v2 in _fields(v):
                if f2 == 1:
                    dims += _ints(w2, v2)
                elif f2 == 8:
                    name = v2.decode()
            m["initializers"].append({"name": name, "dims": dims})
        elif f == 11:
            m["inputs"].append(_value_info(v))
        elif f == 12:
            m["outputs"].append(_value_info(v))
    return m


def main():
    for path in sys.argv[1:]:
        m = summary(path)
        print("%s: ir_version %s, opset %s, producer %s" % (path, m.get("ir_version"), m["opset"], m["producer"]))
        for x in m["inputs"]:
            print("  input  %s %s" % (x["name"], x["shape"]))
        for x in m["outputs"]:
            print("  output %s %s" % (x["name"], x["shape"]))
        for t in m["initializers"]:
            print("  init   %s %s" % (t["name"], t["dims"]))
        for n in m["nodes"]:
            print("  node   %-20s %-20s %s -> %s %s" % (n["op_type"], n["name"], n["inputs"],
                                                     n["outputs"], n["attributes"] or ""))


if __name__ == "__main__":
    main()
