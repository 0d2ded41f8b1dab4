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


ELEM = {"F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "I32": 4, "I8": 1, "U8": 1, "BOOL": 1}
PARTS = ("values", "rowptr", "colidx")


def dense_tensors(meta, tensors):
    """The tensors with every block-compressed param (metadata "dsc.bsr",
    docs/formats.md) rebuilt dense and its three BSR tensors dropped."""
    bsr = json.loads(meta.get("dsc.bsr", "{}"))
    out = {k: v for k, v in tensors.items() if not any(k == b + ".bsr." + p for b in bsr for p in PARTS)}
    for key, e in bsr.items():
        shape, (br, bc), es = e["shape"], e["block"], ELEM[e["dtype"]]
        rows, cols = shape[-2], shape[-1]
        nbr = -(-rows // br)
        rowptr = struct.unpack("<%di" % (len(tensors[key + ".bsr.rowptr"][2]) // 4), tensors[key + ".bsr.rowptr"][2])
        colidx = struct.unpack("<%di" % (len(tensors[key + ".bsr.colidx"][2]) // 4), tensors[key + ".bsr.colidx"][2])
        values = tensors[key + ".bsr.values"][2]
        n = 1
        for dim in shape:
            n *= dim
        dense = bytearray(n * es)
        for r in range(len(rowptr) - 1):
            lead, i0 = divmod(r, nbr)
            i0 *= br
            for k in range(rowptr[r], rowptr[r + 1]):
                j0 = colidx[k] * bc
                w = min(bc, cols - j0)
                for y in range(min(br, rows - i0)):
                    dst = ((lead * rows + i0 + y) * cols + j0) * es
                    src = (k * br + y) * bc * es
                    dense[dst:dst + w * es] = values[src:src + w * es]
        out[key] = (e["dtype"], shape, bytes(dense))
    return out


def to_bsr(tensors, key, br, bc, keep):
    """(the tensors with `key` block-compressed keeping the blocks (i, j) in
    `keep`, its "dsc.bsr" entry); a 2-D F32 param."""
    dtype, shape, raw = tensors[key]
    rows, cols = shape
    nbr, nbc = -(-rows // br), -(-cols // bc)
    rowptr, colidx, values = [0], [], bytearray()
    for i in range(nbr):
        for j in range(nbc):
            if (i, j) not in keep:
                continue
            colidx.append(j)
            for y in range(br):
                for x in range(bc):
                    gy, gx = i * br + y, j * bc + x
                    values += raw[(gy * cols + gx) * 4:(gy * cols + gx + 1) * 4] if gy < rows and gx < cols else bytes(4)
        rowptr.append(len(colidx))
    t = {k: v for k, v in tensors.items() if k != key}
    t[key + ".bsr.rowptr"] = ("I32", [len(rowptr)], struct.pack("<%di" % len(rowptr), *rowptr))
    t[key + ".bsr.colidx"] = ("I32", [len(colidx)], struct.pack("<%di" % len(colidx), *colidx))
    t[key + ".bsr.values"] = (dtype, [len(colidx), br, bc], bytes(values))
    return t, {"dtype": dtype, "shape": shape, "block": [br, bc]}


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

    # -- a param stored block-compressed (BSR): w f32[6, 8] in 4x4 blocks (an
    # edge block row of 2), blocks (0, 0), (0, 1) and (1, 1) kept
    bt, entry = to_bsr(tensors, "w", 4, 4, {(0, 0), (0, 1), (1, 1)})
    bm = dict(meta, **{"dsc.bsr": json.dumps({"w": entry})})
    case("valid_bsr.dsm", sealed(bm, bt), None)

    def bsr_case(name, phrase, part=None, value=None, entry_changes=None):
        t, m = dict(bt), dict(bm)
        if part is not None:
            if value is None:
                del t["w.bsr." + part]
            else:
                t["w.bsr." + part] = value
        if entry_changes:
            m["dsc.bsr"] = json.dumps({"w": dict(entry, **entry_changes)})
        case(name, sealed(m, t), phrase)

    i32 = lambda *v: ("I32", [len(v)], struct.pack("<%di" % len(v), *v))
    bsr_case("bsr_rowptr_not_monotone.dsm", "tensor 'w.bsr.rowptr' is not monotone", "rowptr", i32(0, 4, 3))
    bsr_case("bsr_rowptr_end.dsm", "tensor 'w.bsr.rowptr' must run from 0 to 3", "rowptr", i32(0, 2, 2))
    bsr_case("bsr_colidx_range.dsm", "tensor 'w.bsr.colidx' element 2 is 2, out of range [0, 2)", "colidx",
             i32(0, 1, 2))
    bsr_case("bsr_colidx_order.dsm", "tensor 'w.bsr.colidx' is not strictly increasing in block row 0", "colidx",
             i32(1, 0, 1))
    dtype, shape, raw = bt["w.bsr.values"]
    bsr_case("bsr_values_size.dsm", "tensor 'w.bsr.values' is f32[2,4,4], expected F32[3, 4, 4]", "values",
             (dtype, [2, 4, 4], raw[:2 * 16 * 4]))
    bsr_case("bsr_values_dtype.dsm", "tensor 'w.bsr.values' is f16[3,4,4], expected F32[3, 4, 4]", "values",
             ("F16", shape, raw[:len(raw) // 2]))
    for part in PARTS:
        bsr_case("bsr_missing_%s.dsm" % part, "sparse param 'w': missing tensor 'w.bsr.%s'" % part, part)
    bsr_case("bsr_dense_shape.dsm", "tensor 'w' is f32[6,9] but the graph's param 'w' is f32[6,8]",
             entry_changes={"shape": [6, 9]})
    bsr_case("bsr_dense_rows.dsm", "tensor 'w.bsr.rowptr' is i32[3], expected I32[4]", entry_changes={"shape": [9, 8]})
    bsr_case("bsr_bad_block.dsm", "metadata 'dsc.bsr': the entry of 'w' is not", entry_changes={"block": [0, 4]})
    t = dict(bt)
    t["w"] = tensors["w"]
    case("bsr_and_dense.dsm", sealed(bm, t), "tensor 'w.bsr.colidx' is not a param of the graph")

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
