"""Stream layouts of the DMA engine: descriptors, completions, the packed byte stream of the
codec transforms, host lines."""

from gateware.common import OP_WIDTH, STATUS_WIDTH
from .model import HOST_LINE


def descriptor_layout(paddr_width, haddr_width, len_width, tag_width):
    """Descriptor stream (``sink``); the endpoint's ``last`` ends a job (chain)."""
    return [
        ("op",     OP_WIDTH),     # model.OP_*: 0 copy, 1 compress, 2 decompress
        ("host",   1),            # 1: destination is the host (``host_source`` lines)
        ("tag",    tag_width),    # job tag (the first descriptor's tag is the job's)
        ("src",    paddr_width),  # DRAM byte address of the source
        ("dst",    haddr_width),  # DRAM byte address, or host byte address if ``host``
        ("length", len_width),    # source bytes, >= 1
        ("cap",    len_width),    # codec ops: destination capacity in bytes (copy: unused)
    ]


def completion_layout(tag_width):
    return [
        ("tag",    tag_width),     # tag of the job
        ("status", STATUS_WIDTH),  # model.ST_*
        ("bytes",  32),            # destination bytes written by completed descriptors
    ]


def packed_layout(dw):
    """Byte stream packed from bit 0: every beat full (dw/8 bytes) except the last."""
    return [
        ("data",   dw),                          # bytes, little endian
        ("nbytes", (dw // 8).bit_length()),      # valid bytes in this beat, from byte 0
    ]


def host_line_layout(haddr_width, tag_width):
    return [
        ("addr",   haddr_width),    # host byte address of the line (64-byte aligned)
        ("data",   8 * HOST_LINE),  # line bytes, little endian; bytes >= nbytes are zero
        ("nbytes", 7),              # valid bytes from the line start, 1..64
        ("tag",    tag_width),      # job tag
    ]
