#!/usr/bin/env python3
"""rpc-record-proxy.py — record the ONC RPC traffic between NFS clients and localnfsd,
for the fuzz corpus (docs/FUZZING.md).

    tools/rpc-record-proxy.py OUTDIR NFS_PORT MOUNT_PORT
        Listens on 127.0.0.1 (two free ports, printed as "proxy: nfs=P mount=Q") and
        forwards every connection to 127.0.0.1:NFS_PORT / MOUNT_PORT. Each record is
        written to OUTDIR/call/<sha1> (client to server) or OUTDIR/reply/<sha1>, and
        the first 64 KiB of each client stream to OUTDIR/stream/<sha1>. Ctrl-C stops.

    tools/rpc-record-proxy.py --convert OUTDIR EXPORT_PATH CORPUS_DIR
        Turns a recording into seed files for tests/fuzz/corpus/<target>/ (see the
        input formats at the top of each tests/fuzz/*_fuzz.cc). Minimise them into
        the committed corpus with libFuzzer's merge (docs/FUZZING.md).
"""
import hashlib
import os
import socket
import struct
import sys
import threading

STREAM_KEEP = 64 * 1024


def save(directory, data):
    os.makedirs(directory, exist_ok=True)
    name = hashlib.sha1(data).hexdigest()
    with open(os.path.join(directory, name), "wb") as f:
        f.write(data)


def records(buf):
    """Splits complete records off the front of buf; returns (records, rest)."""
    out, frags = [], b""
    pos = 0
    while len(buf) - pos >= 4:
        (mark,) = struct.unpack(">I", buf[pos:pos + 4])
        length = mark & 0x7FFFFFFF
        if len(buf) - pos - 4 < length:
            break
        frags += buf[pos + 4:pos + 4 + length]
        pos += 4 + length
        if mark & 0x80000000:
            out.append(frags)
            frags = b""
            buf, pos = buf[pos:], 0
    return out, buf


def pump(src, dst, outdir, kind, stream):
    pending = b""
    try:
        while True:
            data = src.recv(1 << 16)
            if not data:
                break
            dst.sendall(data)
            if stream is not None and len(stream) < STREAM_KEEP:
                stream += data[:STREAM_KEEP - len(stream)]
            pending += data
            done, pending = records(pending)
            for r in done:
                save(os.path.join(outdir, kind), r)
    except OSError:
        pass
    finally:
        if stream:
            save(os.path.join(outdir, "stream"), bytes(stream))
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def serve(listener, port, outdir):
    while True:
        client, _ = listener.accept()
        server = socket.create_connection(("127.0.0.1", port))
        threading.Thread(target=pump, args=(client, server, outdir, "call", bytearray()),
                         daemon=True).start()
        threading.Thread(target=pump, args=(server, client, outdir, "reply", None),
                         daemon=True).start()


def proxy(outdir, nfs_port, mount_port):
    ports = []
    for target in (nfs_port, mount_port):
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        ports.append(s.getsockname()[1])
        threading.Thread(target=serve, args=(s, target, outdir), daemon=True).start()
    print("proxy: nfs=%d mount=%d" % tuple(ports), flush=True)
    threading.Event().wait()


def xdr_opaque(data, pos):
    (n,) = struct.unpack(">I", data[pos:pos + 4])
    return data[pos + 4:pos + 4 + n], pos + 4 + ((n + 3) & ~3)


# Seeds stay small: big READ/WRITE records add bytes, not coverage.
SEED_MAX = 8 * 1024


def convert(outdir, export, corpus):
    export = export.encode()
    for name in sorted(os.listdir(os.path.join(outdir, "stream"))):
        with open(os.path.join(outdir, "stream", name), "rb") as f:
            save(os.path.join(corpus, "rpc_record_fuzz"), b"\0" + f.read(SEED_MAX))
    for kind in ("call", "reply"):
        for name in sorted(os.listdir(os.path.join(outdir, kind))):
            with open(os.path.join(outdir, kind, name), "rb") as f:
                rec = f.read()
            if len(rec) > SEED_MAX:
                continue
            save(os.path.join(corpus, "rpc_call_fuzz"), rec)
            if kind == "call":
                convert_call(rec, export, corpus)


def convert_call(rec, export, corpus):
    """nfs_dispatch_fuzz seeds: [selector][flags][arguments] (see its header)."""
    try:
        xid, mtype, rpcvers, prog, vers, proc, flavor = struct.unpack(">7I", rec[:28])
        body, pos = xdr_opaque(rec, 28)
        uid = struct.unpack(">I", body[8 + ((struct.unpack(">I", body[4:8])[0] + 3) & ~3):][:4])[0] \
            if flavor == 1 else None
        _, pos = xdr_opaque(rec, pos + 4)  # verifier
    except (struct.error, IndexError):
        return
    args = rec[pos:]
    cred = 2 if flavor == 0 else (0 if uid == 0 else 1)
    seeds = []
    if prog == 100003 and vers == 3 and proc < 22:
        fh, after = xdr_opaque(args, 0) if len(args) >= 4 else (b"", 0)
        # The recorded handle names some object of the recording server; the seed
        # asks for the fixture objects that proc is most likely to have been used on.
        choices = {6: (1,), 7: (1,), 21: (1,), 5: (3,), 1: (0, 1), 2: (0, 1)}.get(proc, (0, 2))
        seeds = [bytes([proc, c | cred << 3]) + args[after:] for c in choices]
        seeds.append(bytes([proc, 7 | cred << 3]) + args)
    elif prog == 100005 and vers == 3 and proc < 6:
        if proc in (1, 3):
            path, _ = xdr_opaque(args, 0)
            rel = path[len(export):] if path.startswith(export) else path
            seeds = [bytes([22 + proc, 0 | cred << 3]) + rel]
        seeds.append(bytes([22 + proc, 7 | cred << 3]) + args)
    elif prog == 400122 and vers == 1 and proc < 2:
        seeds = [bytes([28 + proc, 0 | cred << 3]), bytes([28 + proc, 7 | cred << 3]) + args]
    seeds.append(bytes([30]) + rec)  # the whole record, as it came
    for s in seeds:
        save(os.path.join(corpus, "nfs_dispatch_fuzz"), s)


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--convert":
        convert(sys.argv[2], sys.argv[3], sys.argv[4])
    elif len(sys.argv) == 4:
        proxy(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(__doc__)
