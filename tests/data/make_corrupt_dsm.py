#!/usr/bin/env python3
"""Regenerates tests/data/corrupt_dsm/: damaged compiled models (.dsm).

    python3 tests/data/make_corrupt_dsm.py build/dsc

Compiles tests/data/dsm_tiny.dsg with `dsc compile -o valid.dsm
--random-weights --seed 1`, then derives from it one file per way a .dsm can
be wrong.  Every damaged file must be refused with exit status 1 and an error
that contains the phrase MANIFEST.tsv lists for it (case-insensitive);
tests/dsm.sh checks that through `dsc inspect` and `dsc run`, and
tests/unit/test_dsm.c through rt_dsm_open.  Files whose names start with
`valid` must load.

Semantic damage (a graph that does not compile, a missing tensor, a future
version, ...) is written with a correct checksum, computed here from the
definition in docs/formats.md, so that the check after the checksum is the
one that fires -- which also proves that definition against the C code.
Standard library only.  The directory doubles as the seed corpus of
tests/fuzz/fuzz_dsm.c.
"""
import hashlib
import json
import os
import struct
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
OUT = os.path.join(HERE, "corrupt_dsm")
MODEL = os.path.join(HERE, "dsm_tiny.dsg")


def read_st(data):
    """(metadata dict, {name: (dtype, shape, bytes)}) of a safetensors file."""
    n = struct.unpack("<Q", data[:8])[0]
    header = json.loads(data[8:8 + n])
    meta = header.pop("__metadata__", {})
    base = 8 + n
    tensors = {k: (v["dtype"], v["shape"], data[base + v["data_offsets"][0]:base + v["data_offsets"][1]])
               for k, v in header.items()}
    return meta, tensors


def write_st(meta, tensors, reverse=False):
    """A safetensors file; `reverse` lays the tensors out in reverse name order
    and puts __metadata__ last (any layout is valid)."""
    header, blobs, off = {}, [], 0
    names = sorted(tensors, key=lambda s: s.encode(), reverse=reverse)
    for name in names:
        dtype, shape, raw = tensors[name]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(raw)]}
        blobs.append(raw)
        off += len(raw)
    if meta is not None:
        if reverse:
            header["__metadata__"] = meta
        else:
            header = {"__metadata__": meta, **header}
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + b"".join(blobs)


def checksum(meta, tensors):
    """The .dsm checksum as docs/formats.md defines it."""
    h = hashlib.sha256()

    def field(tag, value):
        h.update(b"%s %d\n" % (tag, len(value)) + value + b"\n")

    for key in sorted(meta, key=lambda s: s.encode()):
        if key != "dsc.checksum":
            field(b"key", key.encode())
            field(b"value", meta[key].encode())
    for name in sorted(tensors, key=lambda s: s.encode()):
        dtype, shape, raw = tensors[name]
        field(b"tensor", name.encode())
        field(b"dtype", dtype.encode())
        field(b"shape", ",".join(str(d) for d in shape).encode())
        field(b"data", raw)
    return "sha256:" + h.hexdigest()


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make_corrupt_dsm.py PATH/TO/dsc")
    dsc = sys.argv[1]
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    with tempfile.TemporaryDirectory() as tmp:
        valid_path = os.path.join(tmp, "valid.dsm")
        subprocess.run([dsc, "compile", MODEL, "-o", valid_path, "--random-weights", "--seed", "1"], check=True)
        valid = open(valid_path, "rb").read()
    meta, tensors = read_st(valid)
    if checksum(meta, tensors) != meta["dsc.checksum"]:
        sys.exit("the checksum defined here does not match the one dsc wrote")
    hlen = struct.unpack("<Q", valid[:8])[0]
    data_start = 8 + hlen

    cases = []  # (name, bytes, phrase or None for a valid file)

    def case(name, data, phrase):
        cases.append((name, data, phrase))

    def sealed(m, t, **kw):
        """A file with metadata m and tensors t and a correct checksum."""
        m = dict(m)
        m["dsc.checksum"] = checksum(m, t)
        return write_st(m, t, **kw)

    def with_meta(**changes):
        m = dict(meta)
        for k, v in changes.items():
            k = k.replace("__", ".")
            if v is None:
                m.pop(k, None)
            else:
                m[k] = v
        return m

    case("valid.dsm", valid, None)
    case("valid_rewritten.dsm", sealed(meta, tensors, reverse=True), None)

    # -- the container
    case("empty.dsm", b"", "too short (0 bytes)")
    case("trunc_4.dsm", valid[:4], "too short (4 bytes)")
    case("trunc_header.dsm", valid[:8 + hlen // 2], "past the end of the file")
    case("trunc_data.dsm", valid[:-5], "extend past the end of the data section")
    case("trunc_last_byte.dsm", valid[:-1], "extend past the end of the data section")
    b = bytearray(valid)
    b[8] ^= 0x01  # '{' -> 'z'
    case("flip_json.dsm", bytes(b), "not well-formed JSON")
    case("text.dsm", open(MODEL, "rb").read(), "starts with text")
    case("plain_weights.dsm", write_st(None, tensors), "no 'dsc.format' metadata entry")
    case("foreign_metadata.dsm", write_st({"format": "pt"}, tensors), "no 'dsc.format' metadata entry")

    # -- flipped bytes that leave a well-formed container: the checksum
    g = meta["dsc.graph"]
    pos = valid.index(b"relu(")  # inside the graph text
    b = bytearray(valid)
    b[pos] = ord("s")
    case("flip_graph_text.dsm", bytes(b), "checksum mismatch")
    pos = valid.index(b"tiny_g1_0")  # inside the kernel IR text
    b = bytearray(valid)
    b[pos + 5] ^= 0x02
    case("flip_kernel_ir.dsm", bytes(b), "checksum mismatch")
    b = bytearray(valid)
    b[data_start] ^= 0x40  # first data byte
    case("flip_data_first.dsm", bytes(b), "checksum mismatch")
    b = bytearray(valid)
    b[len(valid) - 1] ^= 0x01  # last data byte (a bool of 'keep': 0 <-> 1)
    case("flip_data_last.dsm", bytes(b), "checksum mismatch")
    b = bytearray(valid)
    b[(data_start + len(valid)) // 2] ^= 0x80
    case("flip_data_middle.dsm", bytes(b), "checksum mismatch")
    pos = valid.index(b"sha256:") + 7
    b = bytearray(valid)
    b[pos] = ord("0") if b[pos] != ord("0") else ord("1")
    case("flip_checksum.dsm", bytes(b), "checksum mismatch")
    case("checksum_format.dsm", write_st(with_meta(dsc__checksum="md5:0123"), tensors),
         "'dsc.checksum' is 'md5:0123', not sha256")

    # -- identity and version
    case("wrong_format.dsm", sealed(with_meta(dsc__format="onnx"), tensors),
         "'dsc.format' is 'onnx' (expected 'dsc.dsm')")
    case("future_version.dsm", sealed(with_meta(dsc__format_version="2"), tensors),
         "format version 2 is newer than this dsc")
    case("version_not_number.dsm", sealed(with_meta(dsc__format_version="1.0"), tensors),
         "is '1.0', not a version number")
    case("version_zero.dsm", sealed(with_meta(dsc__format_version="0"), tensors), "not a version number")

    # -- missing metadata
    for key in ["dsc.format_version", "dsc.version", "dsc.model", "dsc.graph", "dsc.plan", "dsc.kernel_ir",
                "dsc.checksum"]:
        m = dict(meta)
        del m[key]
        data = sealed(m, tensors) if key != "dsc.checksum" else write_st(m, tensors)
        case("missing_%s.dsm" % key.split(".", 1)[1], data, "missing metadata entry '%s'" % key)

    # -- the graph
    case("graph_syntax.dsm", sealed(with_meta(dsc__graph=g.replace("model tiny {", "model tiny {{")), tensors),
         "does not compile")
    case("graph_type_error.dsm",
         sealed(with_meta(dsc__graph=g.replace("input x : f32[B, 8]", "input x : f32[B, 9]")), tensors),
         "does not compile")
    case("graph_empty.dsm", sealed(with_meta(dsc__graph=""), tensors), "does not compile")
    case("graph_weights_line.dsm",
         sealed(with_meta(dsc__graph=g.replace("  dim B", '  weights "tiny.safetensors"\n  dim B')), tensors),
         "names a weights file ('tiny.safetensors')")
    case("model_name_mismatch.dsm", sealed(with_meta(dsc__model="other"), tensors),
         "'dsc.model' is 'other' but the graph is model 'tiny'")
    case("plan_not_json.dsm", sealed(with_meta(dsc__plan="[1, 2"), tensors), "'dsc.plan' is not a JSON object")

    # -- graph and weights disagree
    t = dict(tensors)
    del t["w"]
    case("missing_tensor.dsm", sealed(meta, t), "param 'w' has no tensor 'w'")
    t = dict(tensors)
    dtype, shape, raw = t["b"]
    t["b"] = (dtype, [3, 2], raw)
    case("wrong_shape.dsm", sealed(meta, t), "tensor 'b' is f32[3,2] but the graph's param 'b' is f32[6]")
    t = dict(tensors)
    dtype, shape, raw = t["bn.mean"]
    t["bn.mean"] = ("I32", shape, raw)
    case("wrong_dtype.dsm", sealed(meta, t), "tensor 'bn.mean' is i32[6] but the graph's param 'bn.mean' is f32[6]")
    t = dict(tensors)
    t["extra"] = ("F32", [1], b"\0\0\x80\x3f")
    case("extra_tensor.dsm", sealed(meta, t), "tensor 'extra' is not a param of the graph")

    with open(os.path.join(OUT, "MANIFEST.tsv"), "w") as man:
        man.write("# file\tkey phrase the error message must contain (case-insensitive); "
                  "files named valid* must load\n")
        for name, data, phrase in cases:
            with open(os.path.join(OUT, name), "wb") as f:
                f.write(data)
            if phrase is not None:
                man.write("%s\t%s\n" % (name, phrase))
    print("wrote %d files to %s" % (len(cases), OUT))


if __name__ == "__main__":
    main()
