"""How long an upload says it is, from its header alone (WAV, FLAC), without decoding it: a small
file may hold hours (a 1.3 MB FLAC of 2 h of silence), and where such a file is sent (the batch
queue, not the realtime one) is decided before any worker decodes it. None: the header does not
say (other formats, a streamed WAV), and the size alone decides."""

import struct

_FLAC = b"fLaC"


def declared_seconds(data: bytes) -> float | None:
    if data[:4] == _FLAC:
        return _flac(data)
    if data[:4] == b"RIFF" and data[8:12] == b"WAVE":
        return _wav(data)
    return None


def _flac(data: bytes) -> float | None:
    # The first metadata block is STREAMINFO (type 0): after its 4-byte header, 10 bytes of frame
    # sizes, then 20 bits of sample rate, 3 + 5 bits of channels and depth, 36 bits of samples.
    if len(data) < 8 + 18 or data[4] & 0x7F != 0:
        return None
    packed = int.from_bytes(data[18:26], "big")
    rate, samples = packed >> 44, packed & ((1 << 36) - 1)
    return samples / rate if rate and samples else None


def _wav(data: bytes) -> float | None:
    at, byte_rate = 12, 0
    while at + 8 <= len(data):
        kind, size = data[at : at + 4], struct.unpack_from("<I", data, at + 4)[0]
        if kind == b"fmt " and at + 20 <= len(data):
            byte_rate = struct.unpack_from("<I", data, at + 16)[0]
        elif kind == b"data":
            return size / byte_rate if byte_rate and size != 0xFFFFFFFF else None
        at += 8 + size + (size & 1)
    return None
