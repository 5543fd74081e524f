"""The binary tensor extension of OIP v2: tensors as raw little-endian bytes after a JSON header.

This is what NVIDIA's ``tritonclient.http`` sends by default (and KServe's
and Triton's servers accept): the body is a JSON inference header of
``Inference-Header-Content-Length`` bytes, followed by the raw data of each
input that declares ``parameters.binary_data_size`` in place of ``data``,
in input order. An answer is binary when the request asks for it (the
request's ``parameters.binary_data_output``, or the output's own
``parameters.binary_data``): the outputs then carry ``binary_data_size``
and the answer has the same layout, with the header length in the
``Inference-Header-Content-Length`` response header.

Layout of one tensor's bytes (Triton's ``serialize_byte_tensor`` and
``numpy.tobytes`` on little-endian data): numbers as fixed-width
little-endian values, BOOL as one byte each, BYTES as a 4-byte little-endian
length before each element's bytes (UTF-8 text here: features are strings).

Why it matters: a 10,000-row batch's numbers as JSON text are parsed one
by one, and each float is printed as up to 24 characters; as binary they are
one ``numpy.frombuffer`` (docs/benchmarks.md has the measurement). After
decoding, a binary tensor is checked exactly as a JSON one is (the same
:func:`yarnit.api.codecs.parse_v2`), so both encodings accept and refuse the
same tensors.
"""

from __future__ import annotations

import struct
from typing import Any

import numpy as np

from yarnit.core.errors import InvalidInput

HEADER = b"inference-header-content-length"
_DTYPES = {"BOOL": "|b1", "UINT8": "|u1", "UINT16": "<u2", "UINT32": "<u4", "UINT64": "<u8", "INT8": "|i1",
           "INT16": "<i2", "INT32": "<i4", "INT64": "<i8", "FP16": "<f2", "FP32": "<f4", "FP64": "<f8"}


def header_length(value: bytes) -> int:
    """The ``Inference-Header-Content-Length`` header's value, checked."""
    if not value.isdigit() or len(value) > 12:
        raise InvalidInput(f"Inference-Header-Content-Length must be the JSON header's length in bytes, a whole "
                           f"number; got {value[:20].decode('latin-1')!r}.")
    return int(value)


def split(body: bytes, length: int) -> tuple[bytes, memoryview]:
    """(the JSON inference header, the binary data after it) of a binary-extension body."""
    if length > len(body):
        raise InvalidInput(f"Inference-Header-Content-Length is {length} but the body has only {len(body)} bytes; "
                           "it must be the length of the JSON header at the start of the body.")
    return body[:length], memoryview(body)[length:]


def attach_inputs(payload: Any, binary: memoryview) -> None:
    """Give each input of ``payload`` that declares ``binary_data_size`` its ``data``, decoded from ``binary``.

    The tensors are then JSON-shaped, for :func:`yarnit.api.codecs.parse_v2` to check like any other. Every
    byte of ``binary`` must belong to one input.
    """
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    offset = 0
    for tensor in inputs if isinstance(inputs, list) else []:
        parameters = tensor.get("parameters") if isinstance(tensor, dict) else None
        size = parameters.get("binary_data_size") if isinstance(parameters, dict) else None
        if size is None:
            continue
        name = tensor.get("name")
        if type(size) is not int or size < 0:
            raise InvalidInput(f"Input {name!r}: binary_data_size must be a whole number of bytes; got {size!r}.")
        if "data" in tensor:
            raise InvalidInput(f"Input {name!r} has both 'data' and binary_data_size; send its values one way.")
        if offset + size > len(binary):
            raise InvalidInput(f"Input {name!r} declares {size} bytes of binary data but only {len(binary) - offset} "
                               f"are left after the JSON header; binary_data_size must match the data sent.")
        tensor["data"] = _decode(name, tensor.get("datatype"), binary[offset:offset + size])
        offset += size
    if offset != len(binary):
        raise InvalidInput(f"The body has {len(binary) - offset} bytes of binary data that no input declares "
                           "(parameters.binary_data_size); each input's size must match the data sent.")


def _decode(name: Any, datatype: Any, raw: memoryview) -> list[Any]:
    if datatype == "BYTES":
        return _decode_bytes(name, raw)
    dtype = _DTYPES.get(datatype) if isinstance(datatype, str) else None
    if dtype is None:  # an unknown datatype: parse_v2 names the valid ones
        raise InvalidInput(f"Input {name!r} has datatype {datatype!r}, which has no binary form; valid: "
                           f"{', '.join([*_DTYPES, 'BYTES'])}.")
    width = np.dtype(dtype).itemsize
    if len(raw) % width:
        raise InvalidInput(f"Input {name!r} is {datatype} ({width} bytes a value) but has {len(raw)} bytes of "
                           "binary data, not a whole number of values.")
    values: list[Any] = np.frombuffer(raw, dtype=dtype).tolist()
    return values


def _decode_bytes(name: Any, raw: memoryview) -> list[Any]:
    data = bytes(raw)  # one copy; slicing bytes is cheaper than slicing a memoryview per element
    out: list[Any] = []
    append = out.append
    offset, end = 0, len(data)
    try:
        while offset < end:
            start = offset + 4
            stop = start + int.from_bytes(data[offset:start], "little")
            if stop > end or start > end:
                raise InvalidInput(f"Input {name!r} (BYTES): element {len(out)} declares more bytes than are left "
                                   "(each element is a 4-byte little-endian length, then that many bytes).")
            append(data[start:stop].decode("utf-8"))
            offset = stop
    except UnicodeDecodeError:
        raise InvalidInput(f"Input {name!r} (BYTES): element {len(out)} is not UTF-8 text; features are "
                           "strings.") from None
    return out


def output_requested(payload: Any) -> bool:
    """Whether the answer's outputs go as binary: the output's ``binary_data``, else the request's
    ``binary_data_output`` (both default false, as in Triton)."""
    if not isinstance(payload, dict):
        return False
    outputs = payload.get("outputs")
    if isinstance(outputs, list) and outputs and isinstance(outputs[0], dict):
        parameters = outputs[0].get("parameters")
        if isinstance(parameters, dict) and "binary_data" in parameters:
            return parameters["binary_data"] is True
    parameters = payload.get("parameters")
    return isinstance(parameters, dict) and parameters.get("binary_data_output") is True


def encode_outputs(answer: dict[str, Any]) -> tuple[bytes, int]:
    """``answer`` (an OIP v2 answer with JSON ``data``) as (body, JSON header length), every output binary."""
    import orjson

    chunks: list[bytes] = []
    for output in answer["outputs"]:
        data = output.pop("data")
        datatype = output["datatype"]
        if datatype == "BYTES":
            raw = b"".join(struct.pack("<I", len(b)) + b for b in (str(v).encode("utf-8") for v in data))
        else:
            raw = np.asarray(data, dtype=_DTYPES[datatype]).tobytes()
        output["parameters"] = {**output.get("parameters", {}), "binary_data_size": len(raw)}
        chunks.append(raw)
    header = orjson.dumps(answer)
    return header + b"".join(chunks), len(header)


__all__ = ["HEADER", "attach_inputs", "encode_outputs", "header_length", "output_requested", "split"]
