#!/usr/bin/env python3
"""Builds and compares the "tricky tree" used by the backup interop tests (stdlib only).

  tree_tool.py make DIR [--small-files N] [--sparse-gib G] [--seed S]
      Create DIR (must not exist or be empty) with every awkward thing a backup engine must carry:
      files of edge sizes, N small files, a G GiB sparse file, an empty directory, 60 levels of
      nesting, 255-byte names, Unicode and non-UTF-8 names, names with shell/markup characters,
      symlinks (relative, absolute, dangling, looping, non-UTF-8 target), a hardlink group of 3,
      a FIFO, char/block devices, user.* xattrs, setuid/setgid/sticky and odd modes, foreign
      owners, and explicit atime/mtime with nanoseconds on everything (symlinks included).
      The same arguments give the same tree (names, bytes, modes, owners, times). Prints a
      summary JSON on stdout. Devices and foreign owners need root; without root they are
      skipped and listed under "skipped".

  tree_tool.py retime DIR [--seed S]
      Set every entry's atime/mtime back to what `make` gave it (same seed). Only needed where
      atime is updated on read (strictatime mounts); see "Times" below.

  tree_tool.py compare A B [--no-atime] [--no-owner] [--no-root] [--no-sparse]
                           [--ignore-names-not-utf8] [--ignore-xattr PREFIX ...]
                           [--ignore-path REL ...] [--json]
      Walk both trees (bytes paths, lstat, never following symlinks) and compare: the set of
      names, type, permission and setuid/setgid/sticky bits, uid/gid, size, content, mtime ns,
      atime ns, symlink target bytes, st_rdev of devices, xattrs (every name and value, all
      namespaces listxattr shows), hardlink structure and sparseness. Directory times and
      metadata are compared too (the roots' as well, unless --no-root). ctime is never compared:
      no tool can restore it. Exit 0 when identical; 1 with one line per difference
      ("PATH: FIELD: A=... B=...", at most 50, then a count); 2 on usage errors. The --ignore-*
      and --no-* options drop what a given peer cannot carry (see tests/repo for which).

  tree_tool.py selftest
      make + cp -a + compare must be identical; then one change per field in the copy must be
      reported exactly. About a second; runs in a temporary directory.

Content: compared through a SHA-256 over the file's 1 MiB blocks (an all-zero block contributes
a marker, any other block its SHA-256), which is equal exactly when the bytes are equal (given
equal sizes) but lets holes be skipped with SEEK_DATA instead of hashing gigabytes of zeros.

Sparseness: a regular file is "sparse in A" when size >= 1 MiB and its allocation
(st_blocks * 512) + 1 MiB < size / 2. Such a file must be sparse in B too, with
    allocated(B) <= 2 * allocated(A) + 1 MiB + 16 MiB * data_extents(A)
The factor 2 absorbs file-system differences (block size, preallocation, extent metadata counted
in st_blocks). 16 MiB per data extent (SEEK_DATA/SEEK_HOLE) allows a restorer that only punches
holes for whole all-zero chunks: with chunks of at most 8 MiB (restic, borg and hearth), a chunk
straddling each edge of a data extent may be written out with its zeros. 1 MiB is slack. For the
3 GiB file of `make` (3 extents, ~1.3 MiB allocated) that is a limit of ~52 MiB: anything close
to a dense restore fails, any honest hole-punching restore passes. Files that are dense in A
may be sparse in B (a restorer may punch holes where A has written zeros).

Times: `make` gives every entry an mtime between 2001 and 2023 (plus a few edge cases: before
1970, after 2038, whole seconds, 999999999 ns) and an atime around 2099. The future atime is
deliberate: with the usual `relatime` mount option the kernel only updates atime on read when
it is older than mtime/ctime or than 24 h, so reading the tree (a backup, this compare) leaves
it unchanged and A can be compared after being backed up. compare itself opens files and
directories with O_NOATIME where permitted; readlink cannot avoid updating a symlink's atime
on strictatime mounts (use `retime` or --no-atime there).

What the real peers keep (measured on a `make` tree as root on ext4; compare A against
TARGET/<absolute A> for restic, TARGET/<A without '/'> for borg):
  restic 0.14.0 (backup; restore --target): keeps everything except
    - atime: its tree stores "atime" equal to mtime (seen in the raw tree blob), so restored
      atimes are the mtimes                                    -> --no-atime
    - symlink targets that are not UTF-8: each bad byte becomes U+FFFD (plain JSON string)
                                                               -> --ignore-path links/non-utf8-target
    - xattr names that are not UTF-8: the same                 -> --ignore-xattr user.name-not-utf8
    - sparseness: restored fully allocated (no restore --sparse before 0.15) -> --no-sparse
    Names that are not UTF-8 do survive: node names are stored Go-quoted ("caf\\xe9").
  borg 1.2.4 (create --compression lz4; extract --sparse): keeps everything except atime (not
    stored without create --atime) and mtimes outside 1970..2038-01-17, which are clamped.
"""
import argparse
import errno
import hashlib
import json
import os
import random
import stat
import sys

MiB = 1 << 20
GiB = 1 << 30
BLOCK = MiB
ZERO_BLOCK = bytes(BLOCK)
MAX_DIFF_LINES = 50
O_NOATIME = getattr(os, "O_NOATIME", 0)

# Names placed in names/ (str ones are encoded as UTF-8). Order matters only for determinism.
TRICKY_NAMES = [
    "space in name", " leading space", "trailing space ", 'quote"double', "quote'single",
    "back\\slash", "new\nline", "carriage\rreturn", "tab\there", "lt<gt>amp&", "ctrl\x01\x7fchars",
    "caf\u00e9 (NFC)", "cafe\u0301 (NFD)", "\u65e5\u672c\u8a9e.txt", "emoji-\U0001F600\U0001F389",
    "sep\u2028line", "para\u2029sep", "bidi\u202eevil", "zero\u200bwidth", "star*glob?[x]{a,b}",
    "-dash-first", "--double-dash", "#hash", "$dollar{x}", "percent%20", "colon:semi;pipe|",
    "..dots", ".hidden", "CaseName", "casename", "~tilde", "@at!bang",
    "n" * 251 + ".txt",             # 255 bytes, ASCII
    "\u65e5" * 85,                  # 255 bytes, 3-byte UTF-8 characters
    "\U0001F600" * 63 + "xyz",      # 255 bytes, 4-byte UTF-8 characters
    b"caf\xe9",                     # Latin-1, not UTF-8
    b"\xff\xfe",                    # never valid UTF-8
    b"mixed-\xc3(",                 # truncated sequence
    b"surrogate-\xed\xa0\x80",      # UTF-8-encoded surrogate (WTF-8), not valid UTF-8
    b"overlong-\xc0\xaf",           # overlong encoding of '/'
]

# Fixed (atime_ns, mtime_ns) for a few paths; every other entry gets times from times_for().
SPECIAL_TIMES = {
    # atime stays in the future even here: a past atime is updated by the next read (relatime).
    b"times/pre-epoch": (4000000000 * 10**9 + 123456789, -14182940 * 10**9 + 987654321),  # 1969
    b"times/after-2038": (4102444800 * 10**9 + 5, 2240524800 * 10**9 + 999999999),      # 2100, 2041
    b"times/whole-second": (4000000000 * 10**9, 1234567890 * 10**9),
    b"times/max-ns": (4000000000 * 10**9 + 999999999, 1500000000 * 10**9 + 999999999),
    b"times/epoch": (4000000000 * 10**9 + 1, 0),
}


def esc(path):
    """A one-line, unambiguous rendering of a bytes path: bytes that are not UTF-8 as \\xNN,
    a backslash as \\\\, control and invisible separator characters escaped."""
    if isinstance(path, str):
        path = os.fsencode(path)
    out = []
    for c in path.decode("utf-8", "surrogateescape"):
        if "\udc80" <= c <= "\udcff":
            out.append("\\x%02x" % (ord(c) - 0xDC00))
        elif c == "\\":
            out.append("\\\\")
        elif c.isprintable() and c not in "\u2028\u2029":
            out.append(c)
        else:
            out.append(c.encode("unicode_escape").decode("ascii"))
    return "".join(out)


def allocated(st):
    return st.st_blocks * 512


# ----------------------------------------------------------------------------- make


def times_for(rel, seed):
    """Deterministic (atime_ns, mtime_ns) for a path relative to the root (b"." for the root)."""
    if rel in SPECIAL_TIMES:
        return SPECIAL_TIMES[rel]
    h = hashlib.sha256(b"%d:" % seed + rel).digest()
    n = int.from_bytes(h[:16], "big")
    mtime = (1_000_000_000 + n % 700_000_000) * 10**9 + (n >> 64) % 10**9  # 2001..2023
    n2 = int.from_bytes(h[16:], "big")
    atime = (4_070_000_000 + n2 % 60_000_000) * 10**9 + (n2 >> 64) % 10**9  # ~2098..2100
    return atime, mtime


def walk_post_order(root):
    """Yields (relative bytes path, absolute bytes path, lstat) children-first, sorted by name."""
    root = os.fsencode(root)

    def rec(rel, absp):
        st = os.lstat(absp)
        if stat.S_ISDIR(st.st_mode):
            for name in sorted(os.listdir(absp)):
                yield from rec(name if rel == b"." else rel + b"/" + name, absp + b"/" + name)
        yield rel, absp, st

    yield from rec(b".", root)


def apply_times(root, seed):
    for rel, absp, _ in walk_post_order(root):
        atime, mtime = times_for(rel, seed)
        os.utime(absp, ns=(atime, mtime), follow_symlinks=False)


def text_bytes(rng, size):
    words = ("alpha beta gamma delta node pod service backup restore vlan zone firewall allow deny "
             "peer secret metric alert probe latency error warn info debug").split()
    out, n = [], 0
    while n < size:
        line = "2026-%02d-%02dT%02d:%02d:%02d.%03dZ %s host=%s req=%d dur=%dms %s\n" % (
            rng.randint(1, 12), rng.randint(1, 28), rng.randint(0, 23), rng.randint(0, 59),
            rng.randint(0, 59), rng.randint(0, 999), rng.choice(("INFO", "WARN", "ERROR")),
            rng.choice(words), rng.randint(0, 10**6), rng.randint(0, 5000), rng.choice(words))
        out.append(line)
        n += len(line)
    return "".join(out).encode()[:size]


def write(path, data, mode=0o644):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)


def make(args):
    root = os.path.abspath(args.dir)
    if os.path.lexists(root) and (not os.path.isdir(root) or os.listdir(root)):
        sys.exit("tree_tool.py make: %s exists and is not an empty directory" % root)
    os.umask(0o022)
    is_root = os.geteuid() == 0
    rng = random.Random(args.seed)
    skipped = []
    B = os.fsencode(root)

    def p(rel):
        return B + b"/" + (rel if isinstance(rel, bytes) else rel.encode())

    def mkdir(rel, mode=0o755):
        os.makedirs(p(rel), exist_ok=True)
        os.chmod(p(rel), mode)

    os.makedirs(root, exist_ok=True)
    os.chmod(root, 0o755)

    # Regular files at chunker / pack edges.
    mkdir("files")
    write(p("files/empty"), b"")
    write(p("files/one-byte"), b"x")
    write(p("files/512KiB"), rng.randbytes(512 * 1024))
    write(p("files/512KiB+1"), rng.randbytes(512 * 1024 + 1))
    write(p("files/random-9MiB"), rng.randbytes(9 * MiB + 12345))
    write(p("files/text.log"), text_bytes(rng, 4 * MiB + 7))
    write(p("files/zeros-2MiB"), bytes(2 * MiB))  # written zeros (not a hole)
    dup = rng.randbytes(3 * MiB)
    write(p("files/dup-a"), dup)  # identical content: deduplication
    write(p("files/dup-b"), dup)

    # Many small files, 100 per directory.
    mkdir("small")
    for i in range(args.small_files):
        d = "small/%03d" % (i // 100)
        if i % 100 == 0:
            mkdir(d)
        write(p("%s/f%06d" % (d, i)), rng.randbytes(rng.randint(0, 4096)))

    # Sparse file: leading hole, three data extents, trailing hole.
    sparse = None
    if args.sparse_gib > 0:
        mkdir("sparse")
        size = int(args.sparse_gib * GiB) // 4096 * 4096
        path = p("sparse/sparse-%gGiB" % args.sparse_gib)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            os.ftruncate(fd, size)
            for off, n in ((size // 3 // 4096 * 4096, 64 * 1024), (size // 2 // 4096 * 4096, MiB),
                           (size - 2 * MiB, 256 * 1024)):
                os.pwrite(fd, rng.randbytes(n), off)
            os.fsync(fd)
        finally:
            os.close(fd)
        st = os.lstat(path)
        if allocated(st) * 16 > size:
            sys.exit("tree_tool.py make: the file system did not keep %s sparse (%d of %d bytes "
                     "allocated)" % (esc(path), allocated(st), size))
        sparse = {"path": esc(path[len(B) + 1:]), "size": size, "allocated": allocated(st)}

    mkdir("emptydir")
    mkdir("emptydir-0700", 0o700)

    # Deep nesting.
    rel = "deep"
    mkdir(rel)
    for level in range(1, 61):
        rel += "/level-%02d" % level
        mkdir(rel)
    write(p(rel + "/leaf.txt"), b"sixty levels down\n")

    # Awkward names.
    mkdir("names")
    for name in TRICKY_NAMES:
        nb = name.encode() if isinstance(name, str) else name
        assert len(nb) <= 255, name
        write(p(b"names/" + nb), b"name: " + nb + b"\n")
    mkdir(b"names/dir-\xe9-not-utf8")
    write(p(b"names/dir-\xe9-not-utf8/inside"), b"inside a non-UTF-8 directory\n")
    mkdir("names/\u65e5\u672c\u8a9e-dir \U0001F600")
    write(p("names/\u65e5\u672c\u8a9e-dir \U0001F600/x"), b"x\n")

    # Symlinks.
    mkdir("links")
    for name, target in (("rel", b"../files/one-byte"), ("abs", b"/etc/hostname"),
                         ("dangling", b"does/not/exist"), ("dir", b"../deep"),
                         ("loop", b"loop"), ("non-utf8-target", b"target-\xff\xfe-caf\xe9"),
                         ("unicode-target", "../names/\u65e5\u672c\u8a9e.txt".encode()),
                         ("long-target", b"x/" * 500 + b"end")):
        os.symlink(target, p("links/" + name))
    os.symlink(b"../files/one-byte", p(b"links/non-utf8-name-\xe9"))

    # Hardlinks: a group of 3 names (one in another directory) and a second group of 2.
    mkdir("hardlinks")
    mkdir("hardlinks/sub")
    write(p("hardlinks/a"), b"three names, one inode\n" * 100)
    os.link(p("hardlinks/a"), p("hardlinks/b"))
    os.link(p("hardlinks/a"), p("hardlinks/sub/c"))
    write(p("hardlinks/pair-1"), rng.randbytes(70000))
    os.link(p("hardlinks/pair-1"), p("hardlinks/pair-2"))

    # Special files.
    mkdir("special")
    os.mkfifo(p("special/fifo"), 0o640)
    if is_root:
        os.mknod(p("special/chardev-null"), stat.S_IFCHR | 0o666, os.makedev(1, 3))
        os.mknod(p("special/chardev-big"), stat.S_IFCHR | 0o600, os.makedev(300, 70000))
        os.mknod(p("special/blockdev-loop0"), stat.S_IFBLK | 0o660, os.makedev(7, 0))
    else:
        skipped.append("special/chardev-*, special/blockdev-* (mknod needs root)")

    # Extended attributes.
    mkdir("xattr")
    mkdir("xattr/dir")
    write(p("xattr/file"), b"file with xattrs\n")
    xattrs = {"user.plain": b"value", "user.empty": b"", "user.binary": bytes(range(256)),
              "user.unicode-\u00e9": "\u65e5\u672c".encode(), "user.long": rng.randbytes(3000)}
    xattr_ok = True
    try:
        for k, v in xattrs.items():
            os.setxattr(p("xattr/file"), k, v)
        os.setxattr(p("xattr/file"), b"user.name-not-utf8-\xe9", b"latin-1 attribute name")
        os.setxattr(p("xattr/dir"), "user.dir-attr", b"on a directory")
        os.setxattr(p("xattr/dir"), "user.empty", b"")
    except OSError as e:
        xattr_ok = False
        skipped.append("user.* xattrs (%s)" % e.strerror)

    # Modes (chmod after chown: chown clears setuid/setgid).
    mkdir("modes")
    modes = [("setuid", 0o4755), ("setgid", 0o2755), ("all-special", 0o7777), ("mode-0604", 0o604),
             ("mode-0777", 0o777), ("exec-0700", 0o700), ("mode-0444", 0o444)]
    if is_root:
        modes.append(("mode-0000", 0o000))  # unreadable to its non-root owner: root only
    else:
        skipped.append("modes/mode-0000, modes/readonly-dir (root only: unreadable / undeletable)")
    for name, mode in modes:
        write(p("modes/" + name), name.encode() + b"\n")
        os.chmod(p("modes/" + name), mode)
    mkdir("modes/sticky-dir")
    write(p("modes/sticky-dir/f"), b"f\n")
    mkdir("modes/setgid-dir")
    write(p("modes/setgid-dir/f"), b"f\n")
    if is_root:
        mkdir("modes/readonly-dir")
        write(p("modes/readonly-dir/f"), b"inside a 0555 directory\n")

    # Owners.
    mkdir("owners")
    write(p("owners/uid1234-gid5678"), b"owned by 1234:5678\n")
    write(p("owners/setuid-uid1234"), b"setuid, owned by 1234:5678\n")
    mkdir("owners/dir-uid1234")
    os.symlink(b"../files/one-byte", p("owners/link-uid1234"))
    if is_root:
        os.chown(p("owners/uid1234-gid5678"), 1234, 5678)
        os.chown(p("owners/setuid-uid1234"), 1234, 5678)
        os.chown(p("owners/dir-uid1234"), 1234, 5678)
        os.chown(p("owners/link-uid1234"), 1234, 5678, follow_symlinks=False)
    else:
        skipped.append("owners/* keep the caller's uid/gid (chown needs root)")
    os.chmod(p("owners/setuid-uid1234"), 0o4750)

    # Directory modes last among modes: their children exist already.
    os.chmod(p("modes/sticky-dir"), 0o1777)
    os.chmod(p("modes/setgid-dir"), 0o2775)
    if is_root:
        os.chmod(p("modes/readonly-dir"), 0o555)

    # Time edge cases (times set below).
    mkdir("times")
    for name in SPECIAL_TIMES:
        write(B + b"/" + name, name + b"\n")

    # Times last, children before their directory.
    apply_times(root, args.seed)

    counts = {}
    logical = alloc = 0
    for _, _, st in walk_post_order(root):
        kind = type_name(st.st_mode)
        counts[kind] = counts.get(kind, 0) + 1
        if stat.S_ISREG(st.st_mode):
            logical += st.st_size
            alloc += allocated(st)
    summary = {"root": root, "seed": args.seed, "small_files": args.small_files,
               "sparse_gib": args.sparse_gib, "as_root": is_root, "entries": counts,
               "file_bytes": logical, "file_bytes_allocated": alloc, "sparse": sparse,
               "xattrs": xattr_ok, "skipped": skipped}
    print(json.dumps(summary, indent=2))


def retime(args):
    apply_times(os.path.abspath(args.dir), args.seed)


# ----------------------------------------------------------------------------- compare

TYPES = ((stat.S_ISREG, "file"), (stat.S_ISDIR, "dir"), (stat.S_ISLNK, "symlink"),
         (stat.S_ISFIFO, "fifo"), (stat.S_ISCHR, "chardev"), (stat.S_ISBLK, "blockdev"),
         (stat.S_ISSOCK, "socket"))


def type_name(mode):
    for test, name in TYPES:
        if test(mode):
            return name
    return "unknown"


def open_noatime(path, flags):
    if O_NOATIME:
        try:
            return os.open(path, flags | O_NOATIME)
        except PermissionError:  # O_NOATIME needs ownership or CAP_FOWNER
            pass
    return os.open(path, flags)


def list_dir(path):
    fd = open_noatime(path, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    try:
        return sorted(os.fsencode(n) for n in os.listdir(fd))
    finally:
        os.close(fd)


def data_extents(fd, size):
    """[(start, end)] of the data regions, by SEEK_DATA/SEEK_HOLE (one extent when unsupported)."""
    out, pos = [], 0
    try:
        while pos < size:
            try:
                start = os.lseek(fd, pos, os.SEEK_DATA)
            except OSError as e:
                if e.errno == errno.ENXIO:
                    break
                raise
            end = os.lseek(fd, start, os.SEEK_HOLE)
            out.append((start, end))
            pos = end
    except (OSError, AttributeError):
        return [(0, size)]
    return out


def content_digest(path, size):
    """SHA-256 over per-1MiB-block entries (b"Z" for an all-zero block, else b"D" + sha256)."""
    fd = open_noatime(path, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        extents = data_extents(fd, size)
        h = hashlib.sha256()
        ei = 0
        for b in range(0, size, BLOCK):
            e = min(size, b + BLOCK)
            while ei < len(extents) and extents[ei][1] <= b:
                ei += 1
            if ei == len(extents) or extents[ei][0] >= e:
                h.update(b"Z")  # entirely inside a hole
                continue
            chunks, left, off = [], e - b, b
            while left:
                chunk = os.pread(fd, left, off)
                if not chunk:
                    break
                chunks.append(chunk)
                left -= len(chunk)
                off += len(chunk)
            data = b"".join(chunks)
            if data == ZERO_BLOCK[:len(data)]:
                h.update(b"Z")
            else:
                h.update(b"D" + hashlib.sha256(data).digest())
        return h.hexdigest()[:32], len(extents)
    finally:
        os.close(fd)


def read_xattrs(path):
    try:
        names = os.listxattr(path, follow_symlinks=False)
    except OSError as e:
        if e.errno in (errno.ENOTSUP, errno.EPERM):
            return {}
        raise
    out = {}
    for n in names:
        try:
            out[n] = os.getxattr(path, n, follow_symlinks=False)
        except OSError as e:
            out[n] = "<error: %s>" % e.strerror
    return out


class Tree:
    def __init__(self, root, skip_non_utf8=False, ignore=()):
        self.root = os.fsencode(os.path.abspath(root))
        self.entries = {}  # rel bytes -> lstat
        self.skip_non_utf8 = skip_non_utf8
        self.ignore = {os.fsencode(p).strip(b"/") for p in ignore}
        self.skipped = 0
        st = os.lstat(self.root)
        if not stat.S_ISDIR(st.st_mode):
            raise NotADirectoryError(root)
        self._walk(b".", self.root, st)

    def _walk(self, rel, absp, st):
        self.entries[rel] = st
        if stat.S_ISDIR(st.st_mode):
            for name in list_dir(absp):
                crel = name if rel == b"." else rel + b"/" + name
                if crel in self.ignore:
                    self.skipped += 1
                    continue
                if self.skip_non_utf8:
                    try:
                        name.decode("utf-8")
                    except UnicodeDecodeError:
                        self.skipped += 1
                        continue
                cabs = absp + b"/" + name
                self._walk(crel, cabs, os.lstat(cabs))

    def path(self, rel):
        return self.root if rel == b"." else self.root + b"/" + rel

    def inode_groups(self):
        groups = {}
        for rel, st in self.entries.items():
            if not stat.S_ISDIR(st.st_mode):
                groups.setdefault((st.st_dev, st.st_ino), []).append(rel)
        return {rel: tuple(g) for g in groups.values() if len(g) > 1 for rel in g}


def fmt_time(ns):
    import datetime
    s, frac = divmod(ns, 10**9)
    try:
        d = datetime.datetime(1970, 1, 1) + datetime.timedelta(seconds=s)
        return "%s.%09dZ (%d)" % (d.strftime("%Y-%m-%dT%H:%M:%S"), frac, ns)
    except OverflowError:
        return str(ns)


def fmt_xattrs(x):
    return "{" + ", ".join("%s=%s" % (esc(k), v if isinstance(v, str) else
                                      (repr(v) if len(v) <= 40 else "<%d bytes sha256:%s>" % (
                                          len(v), hashlib.sha256(v).hexdigest()[:12])))
                           for k, v in sorted(x.items())) + "}"


def diff_trees(args):
    """Compares the trees args.a and args.b; returns (differences, tree A, tree B)."""
    a = Tree(args.a, args.ignore_names_not_utf8, args.ignore_path)
    b = Tree(args.b, args.ignore_names_not_utf8, args.ignore_path)
    diffs = []

    def diff(rel, field, va, vb):
        diffs.append({"path": esc(rel), "field": field, "a": va, "b": vb})

    def under_missing(rel, missing):
        parts = rel.split(b"/")
        return any(b"/".join(parts[:i]) in missing for i in range(1, len(parts)))

    only_a = {r for r in a.entries if r not in b.entries}
    only_b = {r for r in b.entries if r not in a.entries}
    for rel in sorted(only_a):
        if not under_missing(rel, only_a):
            below = sum(1 for r in only_a if r.startswith(rel + b"/"))
            diff(rel, "presence", type_name(a.entries[rel].st_mode) + (
                " (+%d below)" % below if below else ""), "missing")
    for rel in sorted(only_b):
        if not under_missing(rel, only_b):
            below = sum(1 for r in only_b if r.startswith(rel + b"/"))
            diff(rel, "presence", "missing", type_name(b.entries[rel].st_mode) + (
                " (+%d below)" % below if below else ""))

    ga, gb = a.inode_groups(), b.inode_groups()
    seen_groups = set()
    for rel in sorted(r for r in a.entries if r in b.entries):
        if rel == b"." and args.no_root:
            continue
        sa, sb = a.entries[rel], b.entries[rel]
        ta, tb = type_name(sa.st_mode), type_name(sb.st_mode)
        if ta != tb:
            diff(rel, "type", ta, tb)
            continue
        pa, pb = a.path(rel), b.path(rel)
        if stat.S_IMODE(sa.st_mode) != stat.S_IMODE(sb.st_mode):
            diff(rel, "mode", "%04o" % stat.S_IMODE(sa.st_mode), "%04o" % stat.S_IMODE(sb.st_mode))
        if not args.no_owner and (sa.st_uid, sa.st_gid) != (sb.st_uid, sb.st_gid):
            diff(rel, "owner", "%d:%d" % (sa.st_uid, sa.st_gid), "%d:%d" % (sb.st_uid, sb.st_gid))
        if sa.st_mtime_ns != sb.st_mtime_ns:
            diff(rel, "mtime", fmt_time(sa.st_mtime_ns), fmt_time(sb.st_mtime_ns))
        if not args.no_atime and sa.st_atime_ns != sb.st_atime_ns:
            diff(rel, "atime", fmt_time(sa.st_atime_ns), fmt_time(sb.st_atime_ns))
        if ta in ("chardev", "blockdev") and sa.st_rdev != sb.st_rdev:
            diff(rel, "rdev", "%d,%d" % (os.major(sa.st_rdev), os.minor(sa.st_rdev)),
                 "%d,%d" % (os.major(sb.st_rdev), os.minor(sb.st_rdev)))
        if ta == "symlink":
            la, lb = os.readlink(pa), os.readlink(pb)
            if la != lb:
                diff(rel, "target", esc(la), esc(lb))
        if ta == "file":
            if sa.st_size != sb.st_size:
                diff(rel, "size", sa.st_size, sb.st_size)
            else:
                try:
                    da, ext_a = content_digest(pa, sa.st_size)
                    db, _ = content_digest(pb, sb.st_size)
                except OSError as e:
                    diff(rel, "content", "<unreadable: %s>" % e.strerror, "<not compared>")
                    continue
                if da != db:
                    diff(rel, "content", da, db)
                size, alloc_a, alloc_b = sa.st_size, allocated(sa), allocated(sb)
                if not args.no_sparse and size >= MiB and alloc_a + MiB < size // 2:
                    limit = 2 * alloc_a + MiB + 16 * MiB * ext_a
                    if alloc_b > limit:
                        diff(rel, "sparse", "%d of %d bytes allocated (%d data extents)" % (
                            alloc_a, size, ext_a), "%d allocated (limit %d)" % (alloc_b, limit))
        xa, xb = read_xattrs(pa), read_xattrs(pb)
        for prefix in args.ignore_xattr:
            xa = {k: v for k, v in xa.items() if not k.startswith(prefix)}
            xb = {k: v for k, v in xb.items() if not k.startswith(prefix)}
        if xa != xb:
            keys = {k for k in set(xa) | set(xb) if xa.get(k) != xb.get(k)}
            diff(rel, "xattrs", fmt_xattrs({k: xa.get(k, "<absent>") for k in keys}),
                 fmt_xattrs({k: xb.get(k, "<absent>") for k in keys}))
        if rel in ga or rel in gb:
            group_a, group_b = ga.get(rel, (rel,)), gb.get(rel, (rel,))
            key = (group_a, group_b)
            if set(group_a) != set(group_b) and key not in seen_groups:
                seen_groups.add(key)
                diff(rel, "hardlinks", sorted(esc(r) for r in group_a),
                     sorted(esc(r) for r in group_b))

    return diffs, a, b


def compare(args):
    diffs, a, b = diff_trees(args)
    if args.json:
        print(json.dumps({"identical": not diffs, "count": len(diffs), "differences": diffs,
                          "entries_a": len(a.entries), "entries_b": len(b.entries),
                          "skipped": a.skipped + b.skipped}, indent=2, ensure_ascii=False))
    elif diffs:
        for d in diffs[:MAX_DIFF_LINES]:
            print("%s: %s: A=%s B=%s" % (d["path"], d["field"], d["a"], d["b"]))
        if len(diffs) > MAX_DIFF_LINES:
            print("... and %d more differences (%d in all)" % (len(diffs) - MAX_DIFF_LINES, len(diffs)))
        else:
            print("%d difference(s)" % len(diffs))
    else:
        print("identical: %d entries" % len(a.entries))
    return 1 if diffs else 0


def selftest():
    """make, cp -a, compare (must be identical); then perturb one field per entry of the copy
    and check that compare reports exactly those (path, field) pairs."""
    import shutil
    import subprocess
    import tempfile
    tmp = tempfile.mkdtemp(prefix="tree-tool-selftest-")
    try:
        A, D = os.path.join(tmp, "A"), os.path.join(tmp, "D")
        args = argparse.Namespace(dir=A, small_files=150, sparse_gib=0.0625, seed=7)
        import contextlib
        import io
        with contextlib.redirect_stdout(io.StringIO()):
            make(args)
        subprocess.run(["cp", "-a", A, D], check=True)
        opts = argparse.Namespace(a=A, b=D, no_atime=False, no_owner=False, no_root=False,
                                  ignore_names_not_utf8=False, ignore_xattr=[], ignore_path=[],
                                  no_sparse=False)
        diffs, ta, _ = diff_trees(opts)
        if diffs:
            print("selftest: FAIL: make then cp -a differ:", diffs[:5])
            return 1
        if diff_trees(argparse.Namespace(**dict(vars(opts), b=A)))[0]:
            print("selftest: FAIL: a tree differs from itself")
            return 1
        is_root = os.geteuid() == 0
        d = os.fsencode(D) + b"/"
        expected = set()

        def expect(path, field):
            expected.add((esc(path), field))

        # Structural changes first; their side effects on times are undone by copying A's times.
        os.chmod(d + b"modes/setuid", 0o644); expect(b"modes/setuid", "mode")
        with open(d + b"files/one-byte", "ab") as f:
            f.write(b"y")
        expect(b"files/one-byte", "size")
        with open(d + b"files/512KiB", "r+b") as f:
            f.seek(1000); b0 = f.read(1); f.seek(1000); f.write(bytes([b0[0] ^ 1]))
        expect(b"files/512KiB", "content")
        os.removexattr(d + b"xattr/file", "user.empty"); expect(b"xattr/file", "xattrs")
        os.setxattr(d + b"xattr/dir", "user.dir-attr", b"changed"); expect(b"xattr/dir", "xattrs")
        shutil.copyfile(d + b"hardlinks/b", d + b"hardlinks/b.tmp")
        os.rename(d + b"hardlinks/b.tmp", d + b"hardlinks/b")
        os.chmod(d + b"hardlinks/b", 0o644)
        expect(b"hardlinks/a", "hardlinks"); expect(b"hardlinks/b", "hardlinks")
        sp = [r for r in ta.entries if r.startswith(b"sparse/sparse-")][0]
        with open(d + sp, "r+b") as f:  # fill the holes with written zeros
            size = os.fstat(f.fileno()).st_size
            for off in range(0, size, MiB):
                chunk = os.pread(f.fileno(), MiB, off)
                os.pwrite(f.fileno(), chunk, off)
        expect(sp, "sparse")
        os.unlink(d + b"links/dangling"); os.symlink(b"elsewhere", d + b"links/dangling")
        expect(b"links/dangling", "target")
        os.rmdir(d + b"emptydir"); expect(b"emptydir", "presence")
        write(d + b"newfile", b"new\n"); expect(b"newfile", "presence")
        os.unlink(d + b"names/caf\xe9"); write(d + b"names/caf\xc3\xa9", b"utf-8 now")
        expect(b"names/caf\xe9", "presence"); expect("names/caf\u00e9".encode(), "presence")
        os.unlink(d + b"special/fifo"); write(d + b"special/fifo", b""); expect(b"special/fifo", "type")
        if is_root:
            os.chown(d + b"owners/uid1234-gid5678", 1, 1); expect(b"owners/uid1234-gid5678", "owner")
            os.unlink(d + b"special/chardev-big")
            os.mknod(d + b"special/chardev-big", stat.S_IFCHR | 0o600, os.makedev(300, 70001))
            expect(b"special/chardev-big", "rdev")
        for rel, st in ta.entries.items():
            target = d[:-1] if rel == b"." else d + rel
            if os.path.lexists(target):
                os.utime(target, ns=(st.st_atime_ns, st.st_mtime_ns), follow_symlinks=False)
        # Then the time changes.
        st = os.lstat(d + b"times/max-ns")
        os.utime(d + b"times/max-ns", ns=(st.st_atime_ns, st.st_mtime_ns - 1))
        expect(b"times/max-ns", "mtime")
        st = os.lstat(d + b"links/rel")
        os.utime(d + b"links/rel", ns=(st.st_atime_ns + 1, st.st_mtime_ns), follow_symlinks=False)
        expect(b"links/rel", "atime")
        st = os.lstat(d + b"deep")
        os.utime(d + b"deep", ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
        expect(b"deep", "mtime")

        got = {(x["path"], x["field"]) for x in diff_trees(opts)[0]}
        ok = got == expected
        for miss in sorted(expected - got):
            print("selftest: FAIL: not reported: %s: %s" % miss)
        for extra in sorted(got - expected):
            print("selftest: FAIL: unexpected: %s: %s" % extra)
        # The ignore options hide what they should.
        quiet = argparse.Namespace(**dict(vars(opts), no_atime=True, no_sparse=True, no_owner=True,
                                          ignore_names_not_utf8=True, ignore_xattr=["user."],
                                          ignore_path=["hardlinks", "names", "special", "files",
                                                       "modes", "links", "emptydir", "newfile",
                                                       "times", "deep"]))
        rest = diff_trees(quiet)[0]
        if rest:
            ok = False
            print("selftest: FAIL: ignore options left:", [(x["path"], x["field"]) for x in rest])
        print("selftest: %s (%d differences checked%s)" % (
            "ok" if ok else "FAILED", len(expected), "" if is_root else "; not root: owners/devices skipped"))
        return 0 if ok else 1
    finally:
        for dp, dns, _ in os.walk(tmp):  # read-only directories would stop rm -rf
            for dn in dns:
                if not os.path.islink(os.path.join(dp, dn)):
                    os.chmod(os.path.join(dp, dn), 0o700)
        shutil.rmtree(tmp)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    m = sub.add_parser("make", help="build the tricky tree")
    m.add_argument("dir")
    m.add_argument("--small-files", type=int, default=10000)
    m.add_argument("--sparse-gib", type=float, default=3,
                   help="size of the sparse file, at least 0.05; 0 for none")
    m.add_argument("--seed", type=int, default=1)
    r = sub.add_parser("retime", help="reset atime/mtime to what make set")
    r.add_argument("dir")
    r.add_argument("--seed", type=int, default=1)
    c = sub.add_parser("compare", help="compare two trees exactly")
    c.add_argument("a")
    c.add_argument("b")
    c.add_argument("--no-atime", action="store_true")
    c.add_argument("--no-owner", action="store_true")
    c.add_argument("--no-root", action="store_true", help="do not compare the roots' own metadata")
    c.add_argument("--ignore-names-not-utf8", action="store_true",
                   help="skip entries whose name is not valid UTF-8 (and what is below them)")
    c.add_argument("--ignore-xattr", action="append", default=[], metavar="PREFIX",
                   help="skip xattrs whose name starts with PREFIX (repeatable)")
    c.add_argument("--ignore-path", action="append", default=[], metavar="REL",
                   help="skip this path (relative to the roots) and what is below it (repeatable)")
    c.add_argument("--no-sparse", action="store_true", help="do not demand sparseness in B")
    c.add_argument("--json", action="store_true")
    sub.add_parser("selftest", help="check make/compare on a small tree in a temporary directory")
    a = ap.parse_args()
    if a.cmd == "make":
        if a.small_files < 0 or a.sparse_gib < 0 or 0 < a.sparse_gib < 0.05:
            ap.error("--small-files must not be negative; --sparse-gib must be 0 or >= 0.05")
        make(a)
        return 0
    if a.cmd == "retime":
        retime(a)
        return 0
    if a.cmd == "selftest":
        return selftest()
    for d in (a.a, a.b):
        if not os.path.isdir(d) or os.path.islink(d):
            ap.error("not a directory: %s" % d)
    return compare(a)


if __name__ == "__main__":
    sys.exit(main())
