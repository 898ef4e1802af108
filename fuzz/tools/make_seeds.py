#!/usr/bin/python3
"""Write seed inputs for the three fuzz targets into fuzz/corpus/<target>/.

    fuzz/tools/make_seeds.py [--out fuzz/corpus] [--sessions DIR ...]

Two sources:
  * hand-written client sessions below, covering every option and every command
    (valid, refused and malformed), and
  * sessions recorded from real clients with tools/record_session.py (*.segs files:
    u32 big-endian length + bytes, one segment per client recv()).
Each session becomes seeds for fuzz_handshake (client bytes + config trailer),
fuzz_connection (a script: deliver one segment, let the server answer, repeat; several
thread models, shutdown/disconnect/error variants) and fuzz_parsers (each request header
and option payload in it). Files are named by the SHA-1 of their content, as libFuzzer
names its own; minimise afterwards with -merge=1 (docs/fuzzing.md).

The FuzzedDataProvider layout is mirrored by Fdp below: integers are consumed from the
END of the input (most significant byte first), byte strings from the front.
"""
import argparse
import hashlib
import os
import struct
import sys

# ---- protocol constants (../shared/docs/nbd-protocol.md) ----------------------------------
OPTS_MAGIC = 0x49484156454F5054
REQUEST_MAGIC = 0x25609513
EXT_REQUEST_MAGIC = 0x21E41C71
OPT = dict(export_name=1, abort=2, list=3, peek_export=4, starttls=5, info=6, go=7,
           structured_reply=8, list_meta_context=9, set_meta_context=10, extended_headers=11)
CMD = dict(read=0, write=1, disc=2, flush=3, trim=4, cache=5, write_zeroes=6, block_status=7, resize=8)
F_FUA, F_NO_HOLE, F_DF, F_REQ_ONE, F_FAST_ZERO, F_PAYLOAD_LEN = 1, 2, 4, 8, 16, 32
INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE = 1, 2, 3
C_FIXED_NEWSTYLE, C_NO_ZEROES = 1, 2


def u16(v): return struct.pack(">H", v)
def u32(v): return struct.pack(">I", v)
def u64(v): return struct.pack(">Q", v)


def option(opt, data=b"", length=None):
    return u64(OPTS_MAGIC) + u32(opt) + u32(len(data) if length is None else length) + data


def info_payload(name, infos=()):
    n = name.encode()
    return u32(len(n)) + n + u16(len(infos)) + b"".join(u16(i) for i in infos)


def meta_payload(name, queries):
    n = name.encode()
    out = u32(len(n)) + n + u32(len(queries))
    for q in queries:
        out += u32(len(q)) + q.encode()
    return out


def request(cmd, cookie, offset, length, flags=0, extended=False, payload=b""):
    if extended:
        return u32(EXT_REQUEST_MAGIC) + u16(flags) + u16(cmd) + u64(cookie) + u64(offset) + u64(length) + payload
    return u32(REQUEST_MAGIC) + u16(flags) + u16(cmd) + u64(cookie) + u64(offset) + u32(length) + payload


def flags(f=C_FIXED_NEWSTYLE | C_NO_ZEROES):
    return u32(f)


# ---- hand-written sessions: lists of segments (the client waits after each) ----------------
def transmission_all_commands(ext=False):
    c = iter(range(1, 1000))
    s = []
    wflag = F_PAYLOAD_LEN if ext else 0
    s.append(request(CMD["write"], next(c), 0, 4096, wflag, ext, b"\x5a" * 4096))
    s.append(request(CMD["write"], next(c), 8192, 512, wflag | F_FUA, ext, b"\x11" * 512))
    s.append(request(CMD["read"], next(c), 0, 4096, 0, ext))
    s.append(request(CMD["read"], next(c), 1024, 512, F_DF, ext))
    s.append(request(CMD["read"], next(c), 0, 0, 0, ext))
    s.append(request(CMD["flush"], next(c), 0, 0, 0, ext))
    s.append(request(CMD["trim"], next(c), 65536, 4096, 0, ext))
    s.append(request(CMD["trim"], next(c), 65536, 4096, F_FUA, ext))
    s.append(request(CMD["cache"], next(c), 0, 4096, 0, ext))
    s.append(request(CMD["write_zeroes"], next(c), 131072, 4096, 0, ext))
    s.append(request(CMD["write_zeroes"], next(c), 131072, 4096, F_NO_HOLE, ext))
    s.append(request(CMD["write_zeroes"], next(c), 131072, 4096, F_FAST_ZERO, ext))
    s.append(request(CMD["block_status"], next(c), 0, 65536, 0, ext))
    s.append(request(CMD["block_status"], next(c), 0, 65536, F_REQ_ONE, ext))
    # pipelined: several requests in one segment
    s.append(b"".join(request(CMD["read"], next(c), i * 512, 512, 0, ext) for i in range(6)))
    s.append(request(CMD["disc"], next(c), 0, 0, 0, ext))
    return s


def transmission_errors(ext=False):
    c = iter(range(100, 1000))
    w = F_PAYLOAD_LEN if ext else 0
    return [
        request(CMD["read"], next(c), (1 << 20) - 512, 4096, 0, ext),          # past the end: EINVAL
        request(CMD["write"], next(c), (1 << 20) - 512, 1024, w, ext, b"\0" * 1024),  # ENOSPC
        request(CMD["read"], next(c), 0, 1 << 17, 0, ext),                      # above the maximum
        request(CMD["write"], next(c), 0, 1 << 17, w, ext, b"\0" * 200),        # oversized write: discard
        request(CMD["resize"], next(c), 0, 0, 0, ext),                          # RESIZE: EINVAL
        request(9, next(c), 0, 0, 0, ext),                                      # unknown command
        request(CMD["read"], next(c), 0, 512, 0x8000, ext),                     # unknown flag
        request(CMD["flush"], next(c), 512, 0, 0, ext),                         # flush with a range
        request(CMD["block_status"], next(c), 0, 0, 0, ext),                    # zero-length status
        request(CMD["read"], next(c), 0, 512, F_PAYLOAD_LEN, ext),              # PAYLOAD_LEN on a read
        b"\xde\xad\xbe\xef" + b"\0" * 24,                                       # bad magic: abort
    ]


def handshake(opts, go=("", ()), structured=False, extended=False, meta=None, client_flags=None):
    s = [flags() if client_flags is None else u32(client_flags)]
    for o in opts:
        s.append(o)
    if structured:
        s.append(option(OPT["structured_reply"]))
    if extended:
        s.append(option(OPT["extended_headers"]))
    if meta is not None:
        s.append(option(OPT["set_meta_context"], meta_payload(go[0], meta)))
    s.append(option(OPT["go"], info_payload(go[0], go[1])))
    return s


def sessions():
    every_option = [
        option(OPT["list"]),
        option(OPT["info"], info_payload("disk", (INFO_NAME, INFO_DESCRIPTION, INFO_BLOCK_SIZE))),
        option(OPT["info"], info_payload("small", (INFO_BLOCK_SIZE, 77))),
        option(OPT["info"], info_payload("missing")),
        option(OPT["list_meta_context"], meta_payload("disk", [])),
        option(OPT["list_meta_context"], meta_payload("disk", ["base:"])),
        option(OPT["list_meta_context"], meta_payload("disk", ["base:allocation", "qemu:dirty-bitmap:x"])),
        option(OPT["peek_export"]),
        option(OPT["starttls"]),
        option(99, b"junk"),
        option(OPT["structured_reply"], b"x"),          # must have no payload
        option(OPT["info"], b"\0\0\0\x09disk"),            # truncated
        option(OPT["set_meta_context"], meta_payload("disk", ["base:allocation"])),  # before structured
    ]
    out = {
        "all_options_then_go": handshake(every_option, ("disk", (INFO_NAME, INFO_DESCRIPTION)), True, False,
                                         ["base:allocation"]) + transmission_all_commands(),
        "simple_replies": handshake([], ("", ())) + transmission_all_commands(),
        "structured": handshake([], ("disk", (INFO_BLOCK_SIZE,)), True, False, ["base:allocation"])
        + transmission_all_commands() ,
        "extended": handshake([], ("disk", ()), False, True, ["base:allocation"]) + transmission_all_commands(True),
        "errors_structured": handshake([], ("disk", ()), True, False, ["base:allocation"]) + transmission_errors(),
        "errors_extended": handshake([], ("disk", ()), False, True, ["base:allocation"]) + transmission_errors(True),
        "errors_simple": handshake([], ("", ())) + transmission_errors(),
        "small_readonly": handshake([], ("small", (INFO_BLOCK_SIZE,)), True, False, ["base:allocation"]) + [
            request(CMD["write"], 1, 0, 512, 0, False, b"\0" * 512),             # EPERM
            request(CMD["read"], 2, 100, 512),                                  # misaligned
            request(CMD["read"], 3, 512, 4096),
            request(CMD["block_status"], 4, 0, 65536),
            request(CMD["disc"], 5, 0, 0)],
        "export_name": [flags(C_FIXED_NEWSTYLE), option(OPT["export_name"], b"disk"),
                        request(CMD["read"], 1, 0, 512), request(CMD["disc"], 2, 0, 0)],
        "export_name_no_zeroes": [flags(), option(OPT["export_name"], b""),
                                  request(CMD["write"], 1, 0, 512, F_FUA, False, b"\x01" * 512),
                                  request(CMD["disc"], 2, 0, 0)],
        "export_name_unknown": [flags(), option(OPT["export_name"], b"nope")],
        "abort": [flags(), option(OPT["list"]), option(OPT["abort"])],
        "oversized_option": [flags(), option(OPT["info"], b"\0" * 600), option(OPT["go"], info_payload(""))],
        "huge_option_length": [flags(), option(OPT["list"], b"", 0x7FFFFFFF)],
        "bad_client_flags": [u32(0xFFFFFFF0)],
        "no_fixed_newstyle": [u32(0), option(OPT["export_name"], b"")],
        "bad_option_magic": [flags(), b"NOTMAGIC" + u32(7) + u32(0)],
        "many_options": [flags()] + [option(OPT["list"])] * 40,
        "extended_then_structured": [flags(), option(OPT["extended_headers"]), option(OPT["structured_reply"]),
                                     option(OPT["go"], info_payload(""))],
        "duplicate_cookie": handshake([], ("disk", ()), True, False, ["base:allocation"]) + [
            request(CMD["read"], 5, 0, 512) + request(CMD["read"], 5, 512, 512), request(CMD["disc"], 6, 0, 0)],
        "requests_after_disc": handshake([], ("", ())) + [
            request(CMD["disc"], 1, 0, 0) + request(CMD["read"], 2, 0, 512)],
        "meta_too_many_queries": [flags(), option(OPT["structured_reply"]),
                                  option(OPT["set_meta_context"], meta_payload("disk", ["base:allocation"] * 5)),
                                  option(OPT["go"], info_payload("disk"))],
    }
    return out


# ---- FuzzedDataProvider layout ---------------------------------------------------------------
class Fdp:
    def __init__(self):
        self.front = bytearray()
        self.back = []  # in consumption order

    def u8(self, v):
        self.back.append(v & 0xFF)

    def u16(self, v):
        self.back += [(v >> 8) & 0xFF, v & 0xFF]

    def u32(self, v):
        self.back += [(v >> 24) & 0xFF, (v >> 16) & 0xFF, (v >> 8) & 0xFF, v & 0xFF]

    def data(self, b):
        self.front += b

    def build(self):
        return bytes(self.front) + bytes(reversed(self.back))


def handshake_seed(segments, config, seed):
    f = Fdp()
    f.u8(config)
    f.u32(seed)
    f.data(b"".join(segments))
    return f.build()


# fuzz_connection ops
OP_DELIVER_WINDOW, OP_DELIVER_FOREIGN, OP_DELIVER_MIXED = 0, 1, 2
OP_COMPLETE, OP_COMPLETE_ALL, OP_SEND_DONE, OP_ACK_ALL, OP_SEND_FAILED, OP_PEER_CLOSED = 3, 4, 5, 6, 7, 8
OP_SHUTDOWN, OP_DISCONNECT, OP_TIME, OP_DEADLINE, OP_PHANTOM, OP_GATE_OPENED, OP_PUMP = 9, 10, 11, 12, 13, 14, 15


def connection_seed(segments, model=3, profile=1, read_only=False, prefix=0, c1=1, mode=0, events=None):
    """A script delivering each segment, then pumping; `events` maps a segment index to
    extra ops (list of (op, args...)) inserted after that segment."""
    f = Fdp()
    f.u8((model & 3) | (profile & 1) << 2 | (1 << 3 if read_only else 0) | (prefix << 4))
    f.u8(c1)
    if prefix:
        f.u8(OP_PUMP)  # the built-in handshake first, so the segments line up after it
    events = events or {}
    for i, seg in enumerate(segments):
        for start in range(0, len(seg), 65536):
            part = seg[start:start + 65536]
            f.u8(mode)
            f.u16(len(part) - 1)
            f.data(part)
        f.u8(OP_PUMP)
        for ev in events.get(i, []):
            f.u8(ev[0])
            for a in ev[1:]:
                (f.u16 if ev[0] == OP_TIME else f.u8)(a)
    return f.build()


def parser_seeds(segments):
    """fuzz_parsers inputs: byte 0 parser, byte 1 limits profile, then the bytes."""
    stream = b"".join(segments)
    out = []
    disk_ctx = u16(0xFFF) + u64(1 << 20)  # eflags, size
    i = 0
    while i + 4 <= len(stream):
        magic = struct.unpack(">I", stream[i:i + 4])[0]
        if magic == REQUEST_MAGIC and i + 28 <= len(stream):
            for bits, minb in ((0, 1), (1, 512), (5, 1)):
                out.append(b"\x00\x00" + stream[i:i + 28] + disk_ctx + bytes([bits]) + u32(65536) + u32(minb))
            i += 28
            continue
        if magic == EXT_REQUEST_MAGIC and i + 32 <= len(stream):
            out.append(b"\x01\x00" + stream[i:i + 32] + disk_ctx + bytes([7]) + u32(65536) + u32(1))
            i += 32
            continue
        if stream[i:i + 8] == u64(OPTS_MAGIC) and i + 16 <= len(stream):
            opt, length = struct.unpack(">II", stream[i + 8:i + 16])
            payload = stream[i + 16:i + 16 + min(length, 4096)]
            if opt in (OPT["info"], OPT["go"]):
                out += [b"\x02\x00" + payload, b"\x02\x01" + payload]
            elif opt in (OPT["list_meta_context"], OPT["set_meta_context"]):
                out += [b"\x03\x00" + payload, b"\x03\x01" + payload]
            i += 16 + min(length, len(stream))
            continue
        i += 1
    return out


def encoder_seeds():
    return [bytes([4, 0, style]) + u64(7) + u64(4096) + u64(512) + u32(22) + bytes([n]) + b"\0\0\0\0\0\0\x10\0\0\0\0\x03" * n
            for style in range(3) for n in (0, 1, 3)]


def read_segs(path):
    data = open(path, "rb").read()
    segs, i = [], 0
    while i + 4 <= len(data):
        (n,) = struct.unpack(">I", data[i:i + 4])
        segs.append(data[i + 4:i + 4 + n])
        i += 4 + n
    return segs


def write_all(out_dir, target, inputs):
    d = os.path.join(out_dir, target)
    os.makedirs(d, exist_ok=True)
    for data in inputs:
        with open(os.path.join(d, hashlib.sha1(data).hexdigest()), "wb") as f:
            f.write(data)
    return len(inputs)


def main():
    ap = argparse.ArgumentParser(description="write fuzz seed corpora")
    ap.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "..", "corpus"))
    ap.add_argument("--sessions", nargs="*", default=[], help="directories of recorded *.segs")
    ap.add_argument("--max-session-bytes", type=int, default=64 * 1024,
                    help="recorded sessions are cut here (keeps the corpus small)")
    args = ap.parse_args()

    named = sessions()
    recorded = {}
    for d in args.sessions:
        for name in sorted(os.listdir(d)):
            if name.endswith(".segs"):
                segs, total = [], 0
                for s in read_segs(os.path.join(d, name)):
                    if total + len(s) > args.max_session_bytes:
                        break
                    segs.append(s)
                    total += len(s)
                if segs:
                    recorded["rec_" + name] = segs

    hs, conn, parsers = [], [], []
    for i, (name, segs) in enumerate(sorted({**named, **recorded}.items())):
        hs.append(handshake_seed(segs, config=1, seed=0x9E3779B9 + i))
        hs.append(handshake_seed(segs, config=0, seed=0x12345 + 7 * i))
        conn.append(connection_seed(segs, model=3, profile=1, mode=i % 3))
        parsers += parser_seeds(segs)
    # Variants on a few sessions: thread models, tiny limits, shutdown, forced disconnect,
    # plugin errors, time passing, gate contention, transport failure, handshake prefixes.
    base = named["structured"]
    n = len(base)
    conn.append(connection_seed(base, model=0))
    conn.append(connection_seed(base, model=1, events={2: [(OP_PHANTOM,)], 6: [(OP_PHANTOM,), (OP_GATE_OPENED,)]}))
    conn.append(connection_seed(base, model=2))
    conn.append(connection_seed(base, profile=0))
    conn.append(connection_seed(base, events={6: [(OP_SHUTDOWN,), (OP_TIME, 1500)]}))
    conn.append(connection_seed(base, events={7: [(OP_DISCONNECT, 1)]}))
    conn.append(connection_seed(base, events={7: [(OP_DISCONNECT, 0), (OP_TIME, 3000)]}))
    conn.append(connection_seed(base, events={1: [(OP_SHUTDOWN,)]}))
    conn.append(connection_seed(base, events={n - 2: [(OP_SEND_FAILED,)]}))
    conn.append(connection_seed(base, events={0: [(OP_TIME, 11000)]}))
    conn.append(connection_seed(base, events={3: [(OP_PEER_CLOSED,)]}))
    # Calls left running, completed out of order with errnos.
    f = Fdp()
    f.u8(3 | 1 << 2)
    f.u8(1)
    for seg in base[:4]:
        f.u8(OP_DELIVER_WINDOW); f.u16(len(seg) - 1); f.data(seg); f.u8(OP_PUMP)
    for seg in base[4:10]:
        f.u8(OP_DELIVER_FOREIGN); f.u16(len(seg) - 1); f.data(seg)
    for which, err, shape in ((2, 8, 0), (0, 9, 3), (1, 0, 5), (0, 12, 0), (0, 0, 0)):
        f.u8(OP_COMPLETE); f.u8(which); f.u8(err); f.u8(shape)
        f.u8(OP_SEND_DONE)
    f.u8(OP_SHUTDOWN); f.u8(OP_ACK_ALL); f.u8(OP_COMPLETE_ALL); f.u8(OP_DEADLINE)
    conn.append(f.build())
    # The built-in handshake prefixes, then raw requests.
    reqs = transmission_all_commands()[:-1]
    ereqs = transmission_all_commands(True)[:-1]
    for prefix, c1, segs in ((1, 1, reqs), (2, 0, reqs), (3, 1, ereqs), (4, 5, reqs), (2, 2, reqs)):
        conn.append(connection_seed(segs, prefix=prefix, c1=c1, events={0: [(OP_COMPLETE_ALL,), (OP_PUMP,)]}))
    parsers += encoder_seeds()

    counts = (write_all(args.out, "fuzz_handshake", hs), write_all(args.out, "fuzz_connection", conn),
              write_all(args.out, "fuzz_parsers", parsers))
    print(f"make_seeds: {counts[0]} handshake, {counts[1]} connection, {counts[2]} parser seeds "
          f"({len(named)} written sessions, {len(recorded)} recorded)", file=sys.stderr)


if __name__ == "__main__":
    main()
