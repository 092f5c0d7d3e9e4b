"""The header of an uploaded NRRD, read in Python before any reader sees the file.

Only attached headers with raw or gzip voxels are accepted. Refused (Invalid, 422), each for a reason seen in
the wild against ITK's NRRD reader (teem):

* ``data file`` (detached data): the reader opens whatever path it names, the server's own files included;
* ``ascii``/``text`` encodings: a value of about 1,000 characters crashed the reader (SIGSEGV), and its error
  quoted the data, so with ``data file`` it quoted server files; ``hex``, ``bzip2`` and unknown encodings;
* field lines over :data:`MAX_FIELD_LINE_BYTES` (a field value of about 1,000 characters crashed it too),
  other lines over :data:`MAX_LINE_BYTES`, a header without its blank line within :data:`MAX_HEADER_BYTES`;
* unknown fields and types, repeated fields, ``line skip``/``byte skip`` other than 0, not 3 dimensions.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from covidal.service.store.errors import Invalid
from covidal.service.uploads.limits import VoxelLayout

MAGIC = re.compile(rb"NRRD000[1-5]\r?\n")
MAX_HEADER_BYTES = 64 * 1024
MAX_FIELD_LINE_BYTES = 256
MAX_LINE_BYTES = 4096  # comments and key:=value pairs (Slicer keeps segment metadata in them)
ENCODINGS = {"raw": "raw", "gzip": "gzip", "gz": "gzip"}
_TYPE_NAMES = {
    1: ("signed char", "int8", "int8_t", "uchar", "unsigned char", "uint8", "uint8_t"),
    2: (
        "short",
        "short int",
        "signed short",
        "signed short int",
        "int16",
        "int16_t",
        "ushort",
        "unsigned short",
        "unsigned short int",
        "uint16",
        "uint16_t",
    ),
    4: ("int", "signed int", "int32", "int32_t", "uint", "unsigned int", "uint32", "uint32_t", "float"),
    8: (
        "longlong",
        "long long",
        "long long int",
        "signed long long",
        "signed long long int",
        "int64",
        "int64_t",
        "ulonglong",
        "unsigned long long",
        "unsigned long long int",
        "uint64",
        "uint64_t",
        "double",
    ),
}
TYPE_BYTES = {name: size for size, names in _TYPE_NAMES.items() for name in names}
# teem's field names, lower case without spaces (it matches them ignoring case; "centerings" is "centers")
FIELDS = frozenset(
    {
        "content",
        "number",
        "type",
        "blocksize",
        "dimension",
        "space",
        "spacedimension",
        "sizes",
        "spacings",
        "thicknesses",
        "axismins",
        "axismaxs",
        "spacedirections",
        "centers",
        "centerings",
        "kinds",
        "labels",
        "units",
        "min",
        "max",
        "oldmin",
        "oldmax",
        "endian",
        "encoding",
        "lineskip",
        "byteskip",
        "sampleunits",
        "spaceunits",
        "spaceorigin",
        "measurementframe",
        "datafile",
    }
)
SPATIAL_KINDS = ("domain", "space", "time", "none", "???")  # an axis of voxels, not of a voxel's components
_DATA_FILE = re.compile(r"data\s*file\s*:", re.IGNORECASE)
_FIXED_SIZE = "save it as one .nrrd file with raw or gzip encoding (e.g. from 3D Slicer)"


@dataclass(frozen=True)
class NrrdHeader:
    """An accepted NRRD header: its voxel ``layout``, ``encoding`` (``raw`` or ``gzip``) and length in bytes."""

    layout: VoxelLayout
    encoding: str
    header_bytes: int


def parse_nrrd_header(head: bytes) -> NrrdHeader:
    """The header at the start of ``head`` (the file's first :data:`MAX_HEADER_BYTES` bytes, or all of a shorter file).

    Raises:
        Invalid: not a NRRD, or any header the module docstring lists as refused (the message names the line).
    """
    magic = MAGIC.match(head)
    if magic is None:
        raise Invalid("not a NRRD file: it does not start with 'NRRD0001' to 'NRRD0005'")
    end = head.find(b"\n\n", magic.end() - 1)
    end_crlf = head.find(b"\r\n\r\n", magic.end() - 2)
    ends = [index + width for index, width in ((end, 2), (end_crlf, 4)) if index >= 0]
    if not ends:
        raise Invalid(
            f"the NRRD header does not end (with a blank line) within {MAX_HEADER_BYTES // 1024} KiB; "
            f"detached headers are not accepted: {_FIXED_SIZE}"
        )
    header_bytes = min(ends)
    fields = _fields(head[magic.end() : header_bytes].splitlines())
    layout = _layout(fields)
    encoding = ENCODINGS.get(fields["encoding"].lower())
    if encoding is None:
        raise Invalid(
            f"NRRD encoding {fields['encoding']!r} is not accepted"
            f"{' (ASCII voxels)' if fields['encoding'].lower() in ('ascii', 'text', 'txt') else ''}: "
            f"{_FIXED_SIZE}"
        )
    return NrrdHeader(layout, encoding, header_bytes)


def _fields(lines: list[bytes]) -> dict[str, str]:
    """The header's fields by normalised name (lower case, no spaces); comments and key:=value pairs skipped."""
    fields: dict[str, str] = {}
    for number, raw in enumerate(lines, start=2):
        if not raw.strip():
            continue
        if len(raw) > MAX_LINE_BYTES:
            raise Invalid(f"NRRD header line {number} is {len(raw)} bytes long, over the limit of {MAX_LINE_BYTES}")
        text = raw.decode("latin-1").rstrip()
        if text.startswith("#"):
            continue
        if _DATA_FILE.search(text):
            raise Invalid(
                f"NRRD header line {number} names a 'data file': detached voxel data is not accepted; {_FIXED_SIZE}"
            )
        name, value = _split(text, number)
        if name is None:
            continue  # a key:=value pair
        if len(raw) > MAX_FIELD_LINE_BYTES or not text.isascii():
            raise Invalid(
                f"NRRD header line {number} (field {name!r}) is not a short ASCII line "
                f"(at most {MAX_FIELD_LINE_BYTES} bytes)"
            )
        if name in fields:
            raise Invalid(f"NRRD header line {number} repeats the field {name!r}")
        fields[name] = value
    return fields


def _split(text: str, number: int) -> tuple[str | None, str]:
    """``(normalised field name, value)`` of a field line, ``(None, "")`` for a key:=value pair.

    A line is a key:=value pair when ``:=`` comes before the first ``": "`` (as teem reads it).
    """
    colon, assign = text.find(": "), text.find(":=")
    if assign >= 0 and (colon < 0 or assign < colon):
        return None, ""
    if colon < 0:
        raise Invalid(f"NRRD header line {number} is neither 'field: value', 'key:=value' nor a '#' comment")
    name = text[:colon].strip().lower().replace(" ", "")
    if name not in FIELDS:
        raise Invalid(f"NRRD header line {number} has an unknown field {text[:colon][:40]!r}")
    return name, text[colon + 2 :].strip()


def _layout(fields: dict[str, str]) -> VoxelLayout:
    for required in ("type", "dimension", "sizes", "encoding"):
        if required not in fields:
            raise Invalid(f"the NRRD header lacks its {required!r} field")
    for skip in ("lineskip", "byteskip"):
        if fields.get(skip, "0") != "0":
            raise Invalid(f"NRRD field {skip!r} must be 0 (or absent) for an upload, got {fields[skip]!r}")
    if "blocksize" in fields:
        raise Invalid("NRRD 'block' voxels are not accepted: expected integer or float intensities")
    type_bytes = TYPE_BYTES.get(re.sub(r"\s+", " ", fields["type"].lower()))
    if type_bytes is None:
        raise Invalid(f"NRRD type {fields['type']!r} is not accepted: expected an integer or float type")
    dimension = _whole(fields["dimension"], "dimension")
    kinds = fields.get("kinds", "").lower().split()
    if kinds and kinds[0] not in SPATIAL_KINDS:
        raise Invalid(f"the NRRD holds {kinds[0]!r} voxels (several values each); expected scalar intensities")
    if dimension != 3:
        raise Invalid(f"the NRRD holds a {dimension}D image; expected a 3D volume")
    sizes = tuple(_whole(size, "sizes") for size in fields["sizes"].split())
    if len(sizes) != dimension or min(sizes) < 1:
        raise Invalid(f"NRRD field 'sizes' must be {dimension} whole numbers >= 1, got {fields['sizes']!r}")
    return VoxelLayout(sizes, type_bytes)


def _whole(text: str, field: str) -> int:
    if not text.isdigit() or not text.isascii() or len(text) > 18:
        raise Invalid(f"NRRD field {field!r} must hold whole numbers, got {text[:40]!r}")
    return int(text)
