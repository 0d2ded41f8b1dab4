#!/usr/bin/env python3
"""Regenerates tests/data/corrupt/: malformed .npy and safetensors files.

Standard library only.  Every file must be refused by dsc's readers with an
error (never a crash); MANIFEST.tsv maps each file to a key phrase that the
error message must contain (case-insensitive), and tests/unit/test_io.c checks
both.  The directory doubles as the seed corpus of the fuzz targets.

    python3 tests/data/make_corrupt.py
"""
import json
import os
import struct

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corrupt")
CASES = []  # (file name, bytes, expected key phrase)


def case(name, data, phrase):
    CASES.append((name, data, phrase))


# ---- safetensors ----------------------------------------------------------

def st_raw(header_bytes, data=b"", length=None):
    n = len(header_bytes) if length is None else length
    return struct.pack("<Q", n) + header_bytes + data


def st(header, data=b""):
    text = header if isinstance(header, str) else json.dumps(header)
    return st_raw(text.encode(), data)


def ent(dtype="F32", shape=(2,), offs=(0, 8)):
    return {"dtype": dtype, "shape": list(shape), "data_offsets": list(offs)}


D8 = b"\0" * 8
case("st_empty.safetensors", b"", "too short")
case("st_short.safetensors", b"\x05\0\0\0\0", "too short")
case("st_hlen_zero.safetensors", st_raw(b"", D8, 0), "header length is 0")
case("st_hlen_huge.safetensors", st_raw(b"{}", b"", 200_000_000), "exceeds the limit")
case("st_hlen_u64max.safetensors", st_raw(b"{}", b"", 2**64 - 1), "exceeds the limit")
case("st_hlen_past_end.safetensors", st_raw(b"{}", b"", 100), "past the end of the file")
case("st_bad_json.safetensors", st('{"a": {"dtype": '), "well-formed JSON")
case("st_trailing_text.safetensors", st("{} x"), "well-formed JSON")
case("st_header_nul.safetensors", st_raw(b"{\0}"), "well-formed JSON")
case("st_not_object.safetensors", st("[1, 2]"), "not a JSON object")
case("st_entry_not_object.safetensors", st({"a": 3}), "not a JSON object")
case("st_missing_dtype.safetensors",
     st({"a": {"shape": [2], "data_offsets": [0, 8]}}, D8), "missing field 'dtype'")
case("st_missing_offsets.safetensors",
     st({"a": {"dtype": "F32", "shape": [2]}}, D8), "missing field 'data_offsets'")
case("st_unknown_field.safetensors",
     st({"a": dict(ent(), extra=1)}, D8), "unknown field 'extra'")
case("st_duplicate_field.safetensors",
     st('{"a": {"dtype": "F32", "dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}', D8),
     "duplicate field 'dtype'")
case("st_dtype_not_string.safetensors", st({"a": ent(dtype=5)}, D8), "'dtype' is not a string")
case("st_dtype_f64.safetensors", st({"x": ent("F64", (1,))}, D8), "unsupported dtype 'F64'")
case("st_dtype_u8.safetensors", st({"x": ent("U8", (8,))}, D8), "unsupported dtype 'U8'")
case("st_dtype_lowercase.safetensors", st({"x": ent("f32")}, D8), "unsupported dtype 'f32'")
case("st_shape_not_list.safetensors", st('{"a": {"dtype": "F32", "shape": 2, "data_offsets": [0, 8]}}', D8),
     "'shape' is not a list")
case("st_shape_float.safetensors", st({"a": ent(shape=(2.5,))}, D8), "not a non-negative integer")
case("st_shape_string.safetensors", st({"a": ent(shape=("2",))}, D8), "not a non-negative integer")
case("st_shape_negative.safetensors", st({"a": ent(shape=(-2,))}, D8), "negative")
case("st_shape_rank9.safetensors", st({"a": ent(shape=(1,) * 8 + (2,))}, D8), "9 dimensions")
case("st_shape_overflow.safetensors", st({"a": ent(shape=(2**32, 2**32, 2**32))}, D8),
     "overflows")
case("st_shape_huge_dim.safetensors", st('{"a": {"dtype": "F32", "shape": [1e300], '
                                         '"data_offsets": [0, 8]}}', D8),
     "not a non-negative integer")
case("st_offsets_three.safetensors", st({"a": ent(offs=(0, 4, 8))}, D8), "data_offsets")
case("st_offsets_float.safetensors", st({"a": ent(offs=(0, 8.5))}, D8), "data_offsets")
case("st_offsets_negative.safetensors", st({"a": ent(offs=(-8, 0))}, D8), "data_offsets")
case("st_offsets_not_list.safetensors",
     st('{"a": {"dtype": "F32", "shape": [2], "data_offsets": 8}}', D8), "data_offsets")
case("st_offsets_reversed.safetensors", st({"a": ent(offs=(8, 0))}, D8), "begin after")
case("st_offsets_past_end.safetensors", st({"a": ent(offs=(0, 1000))}, D8),
     "past the end of the data section")
case("st_offsets_huge.safetensors", st('{"a": {"dtype": "F32", "shape": [2], '
                                       '"data_offsets": [0, 1e300]}}', D8), "data_offsets")
case("st_size_mismatch.safetensors", st({"a": ent(shape=(3,))}, D8),
     "hold 8 bytes but F32 [3] needs 12")
case("st_overlap.safetensors",
     st({"a": ent(offs=(0, 8)), "b": ent(offs=(4, 12))}, b"\0" * 12), "overlap")
case("st_overlap_same.safetensors",
     st({"a": ent(offs=(0, 8)), "b": ent(offs=(0, 8))}, D8), "overlap")
case("st_hole.safetensors",
     st({"a": ent(shape=(1,), offs=(0, 4)), "b": ent(shape=(1,), offs=(8, 12))}, b"\0" * 12),
     "hole")
case("st_hole_start.safetensors", st({"a": ent(shape=(1,), offs=(4, 8))}, D8), "hole")
case("st_trailing_data.safetensors", st({"a": ent(shape=(1,), offs=(0, 4))}, D8), "hole")
case("st_no_tensors_with_data.safetensors", st({}, D8), "hole")
case("st_duplicate_name.safetensors",
     st('{"a": %s, "a": %s}' % (json.dumps(ent(shape=(1,), offs=(0, 4))),
                                json.dumps(ent(shape=(1,), offs=(4, 8)))), D8),
     "duplicate tensor name 'a'")
case("st_empty_name.safetensors", st({"": ent()}, D8), "empty name")
case("st_metadata_not_object.safetensors", st({"__metadata__": ["a"]}), "__metadata__ is not")
case("st_metadata_not_string.safetensors", st({"__metadata__": {"k": 1}}),
     "value for key 'k' is not a string")
case("st_metadata_duplicate_key.safetensors", st('{"__metadata__": {"k": "a", "k": "b"}}'),
     "duplicate key 'k'")
case("st_metadata_twice.safetensors", st('{"__metadata__": {}, "__metadata__": {}}'),
     "duplicate key '__metadata__'")

# ---- npy ------------------------------------------------------------------

MAGIC = b"\x93NUMPY"


def npy(dict_text, data=b"", version=(1, 0), newline=True, hlen=None):
    body = dict_text.encode("latin1")
    pre = 10 if version[0] == 1 else 12
    if newline:
        body += b" " * (-(pre + len(body) + 1) % 64) + b"\n"
    n = len(body) if hlen is None else hlen
    length = struct.pack("<H", n) if version[0] == 1 else struct.pack("<I", n)
    return MAGIC + bytes(version) + length + body + data


def hdr(descr="'<f4'", fortran="False", shape="(2,)"):
    return "{'descr': %s, 'fortran_order': %s, 'shape': %s, }" % (descr, fortran, shape)


F8 = b"\0" * 8
case("npy_empty.npy", b"", "empty")
case("npy_bad_magic.npy", b"\x93NUMPX\x01\x00" + npy(hdr(), F8)[8:], "bad magic")
case("npy_text.npy", b"hello world, not numpy\n", "bad magic")
case("npy_short.npy", MAGIC[:4], "truncated header")
case("npy_no_length.npy", MAGIC + b"\x01\x00\x10", "truncated header")
case("npy_version_4.npy", npy(hdr(), F8, version=(4, 0)), "version 4.0")
case("npy_version_1_1.npy", npy(hdr(), F8, version=(1, 1)), "version 1.1")
case("npy_hlen_zero.npy", MAGIC + b"\x01\x00\x00\x00", "header length is 0")
case("npy_hlen_past_end.npy", npy(hdr(), b"", hlen=1000), "truncated header")
case("npy_v2_hlen_huge.npy", npy(hdr(), F8, version=(2, 0), hlen=0xFFFFFFFF), "exceeds the limit")
case("npy_no_newline.npy", npy(hdr() + "   ", F8, newline=False), "newline")
case("npy_not_dict.npy", npy("[1, 2]"), "must be a dict")
case("npy_missing_shape.npy", npy("{'descr': '<f4', 'fortran_order': False, }", F8),
     "missing key 'shape'")
case("npy_missing_descr.npy", npy("{'fortran_order': False, 'shape': (2,)}", F8),
     "missing key 'descr'")
case("npy_unknown_key.npy", npy(hdr()[:-1] + "'extra': 1, }", F8), "unknown key 'extra'")
case("npy_duplicate_key.npy", npy(hdr()[:-1] + "'shape': (2,), }", F8), "duplicate key 'shape'")
case("npy_big_endian.npy", npy(hdr("'>f4'"), F8), "big-endian")
case("npy_big_endian_i8.npy", npy(hdr("'>i8'", shape="(1,)"), F8, version=(3, 0)),
     "astype('<i8')")
case("npy_fortran.npy", npy(hdr(fortran="True", shape="(2, 3)"), b"\0" * 24), "fortran")
case("npy_fortran_int.npy", npy(hdr(fortran="0"), F8), "True or False")
case("npy_f8.npy", npy(hdr("'<f8'", shape="(1,)"), F8), "unsupported dtype: descr '<f8'")
case("npy_c8.npy", npy(hdr("'<c8'", shape="(1,)"), F8), "unsupported dtype")
case("npy_u1.npy", npy(hdr("'|u1'", shape="(8,)"), F8), "unsupported dtype")
case("npy_object.npy", npy(hdr("'|O'", shape="(1,)"), F8), "unsupported dtype")
case("npy_structured.npy", npy(hdr("[('a', '<f4'), ('b', '<f4')]", shape="(1,)"), F8),
     "structured")
case("npy_descr_not_string.npy", npy(hdr("5"), F8), "quoted string for 'descr'")
case("npy_shape_negative.npy", npy(hdr(shape="(-2,)"), F8), "negative")
case("npy_shape_float.npy", npy(hdr(shape="(2.0,)"), F8), "not an integer")
case("npy_shape_rank9.npy", npy(hdr(shape="(1, 1, 1, 1, 1, 1, 1, 1, 2)"), F8), "more than 8")
case("npy_shape_overflow.npy", npy(hdr(shape="(4294967296, 4294967296, 4294967296)"), F8),
     "overflows")
case("npy_shape_huge_dim.npy", npy(hdr(shape="(99999999999999999999,)"), F8), "too large")
case("npy_shape_not_tuple.npy", npy(hdr(shape="(2)"), F8), "not a tuple")
case("npy_shape_list.npy", npy(hdr(shape="[2]"), F8), "tuple")
case("npy_shape_unclosed.npy", npy(hdr(shape="(2, "), F8), "malformed header")
case("npy_unterminated_string.npy", npy("{'descr': '<f4"), "unterminated string")
case("npy_string_newline.npy", npy("{'descr\n': '<f4'}"), "unterminated string")
case("npy_escape.npy", npy("{'de\\x73cr': '<f4', 'fortran_order': False, 'shape': (2,)}", F8),
     "escape")
case("npy_text_after_dict.npy", npy(hdr() + " x", F8), "after the header dict")
case("npy_truncated_data.npy", npy(hdr(shape="(4,)"), F8),
     "truncated: expected 16 bytes of data, found 8")
case("npy_trailing_data.npy", npy(hdr(), F8 + b"\0"), "trailing data")
case("npy_huge_shape_tiny_file.npy", npy(hdr(shape="(1000000000000,)")), "truncated")
case("npy_binary_header.npy", npy("\x01\x02{}"), "must be a dict")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    with open(os.path.join(OUT, "MANIFEST.tsv"), "w") as m:
        m.write("# file\tkey phrase the error message must contain (case-insensitive)\n")
        for name, data, phrase in CASES:
            with open(os.path.join(OUT, name), "wb") as f:
                f.write(data)
            m.write("%s\t%s\n" % (name, phrase))
    print("wrote %d files to %s" % (len(CASES), OUT))


if __name__ == "__main__":
    main()
