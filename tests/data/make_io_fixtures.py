#!/usr/bin/env python3
"""Regenerates the good .npy and safetensors fixtures read by tests/unit/test_io.c.

The files are committed; run this only to change them:

    /usr/bin/python3 tests/data/make_io_fixtures.py          # Debian python3-numpy

Three sections, each skipped with a note when its module is missing:
  * tests/data/npy/*.npy          written by numpy itself (np.save and
    np.lib.format.write_array for versions 2.0 and 3.0), one per supported dtype,
    plus numpy-written files dsc must refuse (reject_*.npy);
  * tests/data/safetensors/small.safetensors    written below with the standard
    library only, laid out so that some tensors are NOT naturally aligned
    (exercising the reader's aligned-copy path);
  * tests/data/safetensors/hf_reference.safetensors    written by the reference
    implementation (pip package `safetensors`, numpy API) when importable.

Values are simple formulas that test_io.c recomputes:
  floats: [-1, -0.5, 0, 0.5, 1, 1.5] shaped (2, 3)
  i8:  arange(6) - 3          i32: (arange(24) - 12) shaped (2, 3, 4)
  i64: [-2**40, 0, 2**40 + 1] bool: [[True, False], [True, True]]
  scalar: f32 3.25            empty: f32 shaped (0, 3)
"""
import json
import os
import struct
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
FLOATS = [-1.0, -0.5, 0.0, 0.5, 1.0, 1.5]
I8 = [i - 3 for i in range(6)]
I32 = [i - 12 for i in range(24)]
I64 = [-(2**40), 0, 2**40 + 1]
BOOLS = [1, 0, 1, 1]


def bf16_bits(x):
    return struct.unpack("<I", struct.pack("<f", x))[0] >> 16  # exact for FLOATS


def make_npy():
    try:
        import numpy as np
    except ImportError:
        print("numpy not importable: .npy fixtures skipped (use /usr/bin/python3)")
        return
    out = os.path.join(HERE, "npy")
    os.makedirs(out, exist_ok=True)
    f32 = np.array(FLOATS, dtype="<f4").reshape(2, 3)
    arrays = {
        "f32": f32,
        "f16": f32.astype("<f2"),
        "bf16": (f32.view("<u4") >> 16).astype("<u2"),  # dsc's bf16 convention
        "i8": np.array(I8, dtype="|i1"),
        "i32": np.array(I32, dtype="<i4").reshape(2, 3, 4),
        "i64": np.array(I64, dtype="<i8"),
        "bool": np.array(BOOLS, dtype="|b1").reshape(2, 2),
        "scalar": np.array(3.25, dtype="<f4"),
        "empty": np.zeros((0, 3), dtype="<f4"),
    }
    for name, a in arrays.items():
        np.save(os.path.join(out, name + "_v1.npy"), a)
    for version, names in (((2, 0), ["f32"]), ((3, 0), ["f32", "i64", "bool", "bf16"])):
        for name in names:
            path = os.path.join(out, "%s_v%d.npy" % (name, version[0]))
            with open(path, "wb") as f:
                np.lib.format.write_array(f, arrays[name], version=version)
    # Files numpy writes that dsc refuses.
    np.save(os.path.join(out, "reject_big_endian.npy"), f32.astype(">f4"))
    np.save(os.path.join(out, "reject_fortran.npy"), np.asfortranarray(arrays["i32"]))
    np.save(os.path.join(out, "reject_f8.npy"), f32.astype("<f8"))
    np.save(os.path.join(out, "reject_structured.npy"),
            np.zeros(2, dtype=[("a", "<f4"), ("b", "<i4")]))
    print("wrote", out)


PACK = {"F32": "<%df", "F16": "<%de", "I8": "<%db", "I32": "<%di", "I64": "<%dq",
        "BOOL": "<%dB", "BF16": "<%dH"}


def write_safetensors(path, tensors, metadata, pad=True):
    """tensors: list of (name, dtype, shape, values) in data order."""
    header, blobs, off = {}, [], 0
    if metadata:
        header["__metadata__"] = metadata
    for name, dtype, shape, values in tensors:
        blob = struct.pack(PACK[dtype] % len(values), *values)
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [off, off + len(blob)]}
        blobs.append(blob)
        off += len(blob)
    text = json.dumps(header).encode()
    if pad:
        text += b" " * (-len(text) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(text)) + text + b"".join(blobs))


def make_safetensors():
    out = os.path.join(HERE, "safetensors")
    os.makedirs(out, exist_ok=True)
    # Data order f32 (24 bytes), f16 (12), i8 (6): i32 then starts at 42, which is
    # not a multiple of 4, nor is i64's start a multiple of 8.
    tensors = [
        ("w.f32", "F32", [2, 3], FLOATS),
        ("w.f16", "F16", [2, 3], FLOATS),
        ("i8", "I8", [6], I8),
        ("i32", "I32", [2, 3, 4], I32),
        ("i64", "I64", [3], I64),
        ("w.bf16", "BF16", [2, 3], [bf16_bits(x) for x in FLOATS]),
        ("mask", "BOOL", [2, 2], BOOLS),
        ("scalar", "F32", [], [3.25]),
        ("empty", "F32", [0, 3], []),
    ]
    write_safetensors(os.path.join(out, "small.safetensors"), tensors,
                      {"format": "pt", "producer": "make_io_fixtures.py"})
    print("wrote", os.path.join(out, "small.safetensors"))
    try:
        import numpy as np
        from safetensors.numpy import save_file
    except ImportError:
        print("safetensors (pip) not importable: hf_reference.safetensors skipped")
        return
    f32 = np.array(FLOATS, dtype="<f4").reshape(2, 3)
    save_file({
        "w.f32": f32,
        "w.f16": f32.astype("<f2"),
        "i8": np.array(I8, dtype="i1"),
        "i32": np.array(I32, dtype="<i4").reshape(2, 3, 4),
        "i64": np.array(I64, dtype="<i8"),
        "mask": np.array(BOOLS, dtype="bool").reshape(2, 2),
        "scalar": np.array(3.25, dtype="<f4"),
        "empty": np.zeros((0, 3), dtype="<f4"),
    }, os.path.join(out, "hf_reference.safetensors"), metadata={"format": "np"})
    print("wrote", os.path.join(out, "hf_reference.safetensors"))


if __name__ == "__main__":
    if "--safetensors-only" not in sys.argv:
        make_npy()
    make_safetensors()
