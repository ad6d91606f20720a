#!/usr/bin/env python3
"""Remote-backend backup benchmark: hearth vs restic over REST, S3 and SFTP, same run, same peer.

Usually started through bench/backup/remote.sh (which resolves and, if needed, builds HEARTH).
For each backend a local peer runs on 127.0.0.1 with its storage in the workdir (same disk):

  rest  rclone serve restic DIR                  rest:http://127.0.0.1:P/<repo>/
  s3    s3rver over HTTPS (self-signed CA)       s3:https://127.0.0.1:P/bench/<repo>
  sftp  OpenSSH sshd, internal-sftp, ed25519     hearth: sftp://root@127.0.0.1:P//DIR/<repo>
                                                 restic: sftp:root@127.0.0.1:DIR/<repo>

For every repetition and backend, hearth and restic (order alternating by repetition) each get a
fresh repository: init (untimed), then the timed first backup of the dataset, under
/usr/bin/time -v (max RSS, client CPU). Before each backup the dataset is read once (warm page
cache, as the "warm" rows of bench.py) and `sync` is run; the repository is deleted afterwards.
Besides the client's CPU (user+sys from time -v) the peer's CPU over the backup is taken from
/proc/<pid>/stat (utime+stime, plus cutime+cstime for sshd's reaped per-connection children),
and the whole machine's busy share from /proc/stat, to show CPU saturation on small machines.

A backend whose first hearth init or backup fails is reported as "not measured (backend failed:
...)" instead of failing the run. Same password for all; restic repository v2, compression auto;
hearth defaults. MB = 10^6 bytes; MB/s = dataset bytes / wall seconds.

Output: a Markdown report (printed, and written to bench/backup/results/<date>-remote.md) and
the raw samples in <date>-remote.json next to it.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402  (helpers shared with the local benchmark)

HERE = bench.HERE
ROOT = bench.ROOT
PASSWORD = bench.PASSWORD
ALL_BACKENDS = ("rest", "s3", "sftp")
S3_KEY = "S3RVER"  # s3rver's built-in account (id and secret)
S3_BUCKET = "bench"
PASSWORD_FILE = [None]  # written into the workdir by main()
TARGET = 2.0  # the target: hearth throughput >= 2x restic's on each backend

log = bench.log
die = bench.die


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port, proc, timeout=30):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if proc.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.2)
    return False


def proc_cpu_s(pid, children=False):
    """CPU seconds of pid (utime+stime, + cutime+cstime when children), or None."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    tick = os.sysconf("SC_CLK_TCK")
    # fields[0] is the state (field 3); utime is field 14 -> index 11.
    v = int(fields[11]) + int(fields[12])
    if children:
        v += int(fields[13]) + int(fields[14])
    return v / tick


def machine_busy():
    """(busy jiffies, total jiffies) of all CPUs from /proc/stat."""
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    idle = vals[3] + vals[4]
    return sum(vals) - idle, sum(vals)


# ----------------------------------------------------------------------------- peers


class Peer:
    name = ""
    cpu_children = False

    def __init__(self, workdir, logdir):
        self.dir = os.path.join(workdir, "peer-" + self.name)
        bench.rmtree(self.dir)
        os.makedirs(self.dir)
        self.logdir = logdir
        self.port = free_port()
        self.proc = None
        self.n = 0

    def spawn(self, argv, env=None):
        lf = open(os.path.join(self.logdir, "peer-%s.log" % self.name), "ab")
        self.proc = subprocess.Popen(argv, cwd=self.dir, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL,
                                     env=env, start_new_session=True)
        if not wait_port(self.port, self.proc):
            raise RuntimeError("%s peer did not start; log %s:\n%s" % (
                self.name, lf.name, bench.tail(lf.name)))

    def cpu(self):
        return proc_cpu_s(self.proc.pid, self.cpu_children) if self.proc else None

    def stop(self):
        if self.proc and self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGTERM)
                self.proc.wait(10)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(self.proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        bench.rmtree(self.dir)

    def new_repo(self):
        self.n += 1
        return "r%d" % self.n

    def drop_repo(self, repo):
        bench.rmtree(os.path.join(self.data, repo))

    # Per-tool repository arguments: (args before the subcommand, extra env).
    def args(self, tool, repo):
        raise NotImplementedError


class Rest(Peer):
    name = "rest"

    def start(self):
        self.data = os.path.join(self.dir, "data")
        os.makedirs(self.data)
        self.spawn(["rclone", "serve", "restic", "--addr", "127.0.0.1:%d" % self.port, self.data])

    def version(self):
        out = subprocess.run(["rclone", "version"], capture_output=True, text=True).stdout
        return (out.splitlines() or ["rclone ?"])[0]

    def args(self, tool, repo):
        return ["-r", "rest:http://127.0.0.1:%d/%s/" % (self.port, repo)], {}


class S3(Peer):
    name = "s3"

    def __init__(self, workdir, logdir, s3rver):
        super().__init__(workdir, logdir)
        self.exe = s3rver

    def start(self):
        d = self.dir
        with open(os.path.join(d, "server.ext"), "w") as f:
            f.write("subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
                    "extendedKeyUsage=serverAuth\n")
        ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
        self.ca = os.path.join(d, "ca.pem")
        for argv in (["req", "-x509"] + ec + ["-keyout", "ca.key", "-out", "ca.pem", "-days", "2",
                                              "-subj", "/CN=hearth-bench-ca", "-addext",
                                              "basicConstraints=critical,CA:TRUE", "-addext",
                                              "keyUsage=critical,keyCertSign,cRLSign"],
                     ["req"] + ec + ["-keyout", "server.key", "-out", "server.csr", "-subj", "/CN=localhost"],
                     ["x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
                      "-CAcreateserial", "-out", "server.pem", "-days", "2", "-extfile", "server.ext"]):
            bench.run(["openssl"] + argv, cwd=d, capture_output=True)
        self.data = os.path.join(d, "data")
        os.makedirs(self.data)
        env = dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider")
        self.spawn([self.exe, "-d", self.data, "-a", "127.0.0.1", "-p", str(self.port), "--key",
                    "server.key", "--cert", "server.pem", "--service-endpoint", "localhost"], env=env)

    def version(self):
        try:
            out = subprocess.run([self.exe, "--version"], capture_output=True, text=True, timeout=30,
                                 env=dict(os.environ, NODE_OPTIONS="--openssl-legacy-provider"))
            return "s3rver " + out.stdout.strip()
        except (OSError, subprocess.TimeoutExpired):
            return "s3rver ?"

    def drop_repo(self, repo):
        # s3rver keeps objects as files under DATA/<bucket>/<key>...
        bench.rmtree(os.path.join(self.data, S3_BUCKET, repo))

    def args(self, tool, repo):
        return (["-r", "s3:https://127.0.0.1:%d/%s/%s" % (self.port, S3_BUCKET, repo), "--cacert", self.ca],
                {"AWS_ACCESS_KEY_ID": S3_KEY, "AWS_SECRET_ACCESS_KEY": S3_KEY,
                 "AWS_DEFAULT_REGION": "us-east-1"})


class Sftp(Peer):
    name = "sftp"
    cpu_children = True  # sshd forks one process per connection; counted once reaped

    def start(self):
        d = self.dir
        for k in ("host_key", "user_key"):
            bench.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", k, "-f", os.path.join(d, k)])
        shutil.copy(os.path.join(d, "user_key.pub"), os.path.join(d, "authorized_keys"))
        with open(os.path.join(d, "host_key.pub")) as f:
            kt, kb = f.read().split()[:2]
        self.kh = os.path.join(d, "known_hosts")
        with open(self.kh, "w") as f:
            f.write("[127.0.0.1]:%d %s %s\n" % (self.port, kt, kb))
        self.key = os.path.join(d, "user_key")
        with open(os.path.join(d, "sshd_config"), "w") as f:
            f.write("Port %d\nListenAddress 127.0.0.1\nHostKey %s\nAuthorizedKeysFile %s\n"
                    "PasswordAuthentication no\nKbdInteractiveAuthentication no\n"
                    "PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\n"
                    "PidFile %s\nSubsystem sftp internal-sftp\nLogLevel ERROR\n" % (
                        self.port, os.path.join(d, "host_key"), os.path.join(d, "authorized_keys"),
                        os.path.join(d, "sshd.pid")))
        os.makedirs("/run/sshd", exist_ok=True)
        self.data = os.path.join(d, "data")
        os.makedirs(self.data)
        self.user = os.environ.get("USER") or "root"
        self.spawn(["/usr/sbin/sshd", "-D", "-e", "-f", os.path.join(d, "sshd_config")])

    def version(self):
        out = subprocess.run(["ssh", "-V"], capture_output=True, text=True)
        return (out.stderr or out.stdout).strip()

    def args(self, tool, repo):
        path = os.path.join(self.data, repo)
        if tool == "hearth":
            return (["-r", "sftp://%s@127.0.0.1:%d/%s" % (self.user, self.port, path),
                     "-o", "sftp.identity=" + self.key, "-o", "sftp.known-hosts=" + self.kh], {})
        cmd = ("ssh -p %d -i %s -o UserKnownHostsFile=%s -o StrictHostKeyChecking=yes -o BatchMode=yes "
               "%s@127.0.0.1 -s sftp" % (self.port, self.key, self.kh, self.user))
        return ["-r", "sftp:%s@127.0.0.1:%s" % (self.user, path), "-o", "sftp.command=" + cmd], {}


# ----------------------------------------------------------------------------- tools


def tool_cmds(tool, exe, repo_args, src):
    if tool == "hearth":
        # --password-file: binaries before 16e6e2f crashed on HEARTH_PASSWORD in -O3 builds.
        base = [exe, "repo"] + repo_args + ["--password-file", PASSWORD_FILE[0]]
        return base + ["init"], base + ["-q", "backup", src]
    base = [exe] + repo_args
    return base + ["init", "--repository-version", "2"], base + ["-q", "backup", src]


def tool_env(tool, state, extra):
    e = dict(os.environ)
    for k in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND",
              "HEARTH_REPOSITORY", "HEARTH_PASSWORD_COMMAND", "AWS_SESSION_TOKEN", "AWS_PROFILE"):
        e.pop(k, None)
    e.update({"XDG_CACHE_HOME": os.path.join(state, "cache"),
              "XDG_CONFIG_HOME": os.path.join(state, "config")})
    if tool == "hearth":
        e["HEARTH_PASSWORD"] = PASSWORD
    else:
        e.update({"RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": os.path.join(state, "cache")})
    e.update(extra)
    return e


def one(a, peer, tool, exe, rep, src):
    """Fresh repository, init, timed first backup; returns a sample dict."""
    repo = peer.new_repo()
    state = os.path.join(a.workdir, "state-%s-%s" % (peer.name, tool))
    bench.rmtree(state)
    os.makedirs(state)
    logfile = os.path.join(a.workdir, "logs", "%s-%s-%d.log" % (peer.name, tool, rep))
    repo_args, extra = peer.args(tool, repo)
    env = tool_env(tool, state, extra)
    init, backup = tool_cmds(tool, exe, repo_args, src)
    out = {"backend": peer.name, "tool": tool, "rep": rep, "error": None}
    try:
        with open(logfile, "ab") as lf:
            lf.write(("\n$ %s\n" % " ".join(bench.shq(c) for c in init)).encode())
            lf.flush()
            r = subprocess.run(init, env=env, cwd=a.workdir, stdout=lf, stderr=lf,
                               stdin=subprocess.DEVNULL, timeout=300)
        if r.returncode != 0:
            raise RuntimeError("init failed (exit %d): %s" % (r.returncode, last_error(logfile)))
        bench.read_all(src)
        bench.sync()
        pc0, mb0, t0 = peer.cpu(), machine_busy(), time.monotonic()
        s = bench.timed(backup, env, a.workdir, logfile)
        if peer.cpu_children:
            time.sleep(0.5)  # let sshd reap the session process so its CPU is in cutime
        pc1, mb1 = peer.cpu(), machine_busy()
        s["peer_cpu_s"] = round(pc1 - pc0, 2) if pc0 is not None and pc1 is not None else None
        s["machine_busy_pct"] = round(100.0 * (mb1[0] - mb0[0]) / max(1, mb1[1] - mb0[1]), 1)
        s["stored_bytes"] = bench.du_bytes(os.path.join(peer.data, S3_BUCKET, repo) if peer.name == "s3"
                                           else os.path.join(peer.data, repo))
        out.update(s)
        if s["rc"] != 0:
            raise RuntimeError("backup failed (exit %d): %s" % (s["rc"], last_error(logfile)))
    except (RuntimeError, subprocess.CalledProcessError, subprocess.TimeoutExpired, OSError) as e:
        out["error"] = str(e)
        log("%s/%s/rep %d: %s (log %s)" % (peer.name, tool, rep, e, logfile))
    finally:
        peer.drop_repo(repo)
        bench.rmtree(state)
    return out


def last_error(logfile):
    lines = [l.strip() for l in bench.tail(logfile, 15).splitlines() if l.strip() and not l.startswith("$ ")]
    return (lines[-1] if lines else "no output")[:240]


# ----------------------------------------------------------------------------- dataset


def make_subset(a, full):
    """A hard-linked subset of the full dataset of about --dataset-mb: every k-th file of the sorted
    file list (evenly spaced, so the mix of file sizes and directories stays that of the full set)."""
    if a.dataset_mb is None:
        return full
    sub = os.path.join(a.workdir, "subset-%dmb" % a.dataset_mb)
    stamp = sub + ".complete"
    if os.path.exists(stamp):
        return sub
    bench.rmtree(sub)
    files = []
    for dp, dns, fns in os.walk(full):
        dns.sort()
        for fn in sorted(fns):
            p = os.path.join(dp, fn)
            if os.path.isfile(p) and not os.path.islink(p):
                files.append((p, os.lstat(p).st_size))
    total = sum(sz for _, sz in files)
    frac = min(1.0, a.dataset_mb * 10**6 / max(1, total))
    for i, (p, _) in enumerate(files):
        if int((i + 1) * frac) > int(i * frac):
            d = os.path.join(sub, os.path.relpath(os.path.dirname(p), full))
            os.makedirs(d, exist_ok=True)
            os.link(p, os.path.join(d, os.path.basename(p)))
    open(stamp, "w").close()
    return sub


# ----------------------------------------------------------------------------- report


def fmt(x, nd=1):
    return bench.fmt(x, nd)


def report(a, meta, samples):
    lines = []
    L = lines.append
    mb = meta["dataset_bytes"] / 1e6
    L("# Remote-backend backup benchmark, %s" % meta["date"])
    L("")
    L("- Machine: %s, %d cores, %.1f GiB RAM, kernel %s; peers and repositories in %s on %s" % (
        meta["cpu"], meta["cores"], meta["ram_gib"], meta["kernel"], a.workdir, meta["workdir_fs"]))
    L("- Dataset: %s — %d files, %.1f MB (%s)" % (
        meta["dataset"], meta["dataset_files"], mb,
        "full set" if a.dataset_mb is None else "subset of the cached 2.2 GB make-dataset.py set, "
        "every k-th file (hard links) for about --dataset-mb %d" % a.dataset_mb))
    L("- Tools: " + "; ".join("%s: %s" % (t, v) for t, v in meta["versions"].items()))
    L("- hearth binary: %s" % a.hearth)
    L("- Peers on 127.0.0.1: " + "; ".join("%s: %s" % (b, v) for b, v in meta["peers"].items()))
    L("- Phase: init (untimed) + first backup into a fresh repository, warm page cache; "
      "restic repository v2, compression auto; hearth defaults")
    L("- Repetitions: %d per backend and tool, order alternating (min and median)" % a.repeat)
    L("- Load average (1, 5, 15 min) at start %s, at end %s%s" % (
        "/".join("%.1f" % x for x in meta["loadavg_start"]),
        "/".join("%.1f" % x for x in meta["loadavg_end"]),
        " — NOTE: other work was running on the machine; numbers are noisy"
        if max(meta["loadavg_start"][0], meta["loadavg_end"][0]) > 0.5 * meta["cores"] else ""))
    L("- CPU: `client %%` = (user+sys of the backup process) / wall, `peer %%` = the server "
      "process's CPU over the same interval / wall (100 = one core), `machine %%` = busy share of "
      "all %d cores over the backup (includes anything else running). On a %d-core machine the "
      "peer competes with the client for CPU." % (meta["cores"], meta["cores"]))
    L("- `ratio`: hearth median MB/s / restic median MB/s; target ≥ %.0f×" % TARGET)
    L("")
    L("- `client CPU s`: median user+sys seconds of the backup process; `CPU ratio` in the summary: "
      "restic's / hearth's, i.e. the throughput ratio the client alone would give if both were "
      "CPU-bound on the same cores (less sensitive to other load than wall time)")
    L("")
    L("| backend | tool | min s | median s | best MB/s | median MB/s | max RSS MiB | client CPU s | "
      "client % | peer % | machine % | stored MB | ratio | target |")
    L("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    summary = []
    for be in a.backends:
        med = {}
        cpu = {}
        rows = []
        for tool in ("hearth", "restic"):
            ss = [s for s in samples if s["backend"] == be and s["tool"] == tool]
            ok = [s for s in ss if not s["error"]]
            if not ok:
                err = next((s["error"] for s in ss if s["error"]), "not run")
                rows.append("| %s | %s | not measured (backend failed: %s) ||||||||||||" % (
                    be, tool, err.splitlines()[0][:160].replace("|", "/")))
                continue
            walls = [s["wall_s"] for s in ok]
            m = statistics.median(walls)
            med[tool] = mb / m
            cpu[tool] = statistics.median(s["user_s"] + s["sys_s"] for s in ok)
            pc = [s["peer_cpu_s"] / s["wall_s"] * 100 for s in ok if s.get("peer_cpu_s") is not None]
            rows.append([be, tool, min(walls), m, mb / min(walls), mb / m, max(s["rss_mib"] for s in ok),
                         cpu[tool],
                         statistics.median((s["user_s"] + s["sys_s"]) / s["wall_s"] * 100 for s in ok),
                         statistics.median(pc) if pc else None,
                         statistics.median(s["machine_busy_pct"] for s in ok),
                         statistics.median(s["stored_bytes"] for s in ok) / 1e6,
                         "%d/%d failed" % (len(ss) - len(ok), len(ss)) if len(ok) < len(ss) else ""])
        ratio = med["hearth"] / med["restic"] if len(med) == 2 else None
        for r in rows:
            if isinstance(r, str):
                L(r)
                continue
            is_h = r[1] == "hearth"
            L("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                r[0], r[1], fmt(r[2], 2), fmt(r[3], 2), fmt(r[4], 0), fmt(r[5], 0), fmt(r[6], 0),
                fmt(r[7], 2), fmt(r[8], 0), fmt(r[9], 0), fmt(r[10], 0), fmt(r[11], 0),
                (fmt(ratio, 2) + "×") if (is_h and ratio) else "",
                (("met" if ratio >= TARGET else "NOT met") if (is_h and ratio) else "") +
                ((" (" + r[12] + ")") if r[12] else "")))
        cratio = cpu["restic"] / cpu["hearth"] if len(cpu) == 2 and cpu["hearth"] > 0 else None
        summary.append((be, med.get("hearth"), med.get("restic"), ratio, cratio))
    L("")
    L("Summary (median MB/s):")
    L("")
    L("| backend | hearth | restic | hearth / restic | ≥ %.0f× | CPU ratio |" % TARGET)
    L("|---|---:|---:|---:|---|---:|")
    for be, h, r, ratio, cratio in summary:
        L("| %s | %s | %s | %s | %s | %s |" % (be, fmt(h, 0), fmt(r, 0),
                                                (fmt(ratio, 2) + "×") if ratio else "—",
                                                "—" if ratio is None else ("yes" if ratio >= TARGET else "no"),
                                                (fmt(cratio, 2) + "×") if cratio else "—"))
    errors = [s for s in samples if s.get("error")]
    if errors:
        L("")
        L("Errors:")
        L("")
        for s in errors:
            L("- %s %s rep %d: %s" % (s["backend"], s["tool"], s["rep"], s["error"].splitlines()[0][:240]))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--dataset-mb", type=int, default=None,
                    help="use a hard-linked subset of about this many MB (default: the full set)")
    ap.add_argument("--size-mb", type=int, default=2200, help="size of the full cached set (make-dataset.py --mb)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--backends", default=",".join(ALL_BACKENDS))
    ap.add_argument("--workdir", default="/tmp/hearth-bench-remote",
                    help="peers' storage, repositories, logs (same disk as the dataset by default)")
    ap.add_argument("--dataset-dir", default="/tmp/hearth-bench",
                    help="where the cached full dataset lives (as bench.py --workdir)")
    ap.add_argument("--dataset-script", default=os.environ.get(
        "BENCH_DATASET_SCRIPT", "/work/shared/bench/make-dataset.py"))
    ap.add_argument("--hearth", default=os.environ.get("HEARTH", os.path.join(ROOT, "build/main-rel/hearth")))
    ap.add_argument("--restic", default=shutil.which("restic") or "/usr/bin/restic")
    ap.add_argument("--s3rver", default=os.environ.get("S3RVER", "/opt/hearth-npm/node_modules/.bin/s3rver"))
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--render", metavar="JSON",
                    help="only rebuild the Markdown report from a results JSON (written next to it)")
    a = ap.parse_args()
    if a.render:
        with open(a.render) as f:
            data = json.load(f)
        ra = argparse.Namespace(**data["meta"]["args"])
        md = report(ra, data["meta"], data["samples"])
        print(md)
        with open(os.path.splitext(a.render)[0] + ".md", "w") as f:
            f.write(md)
        return 0
    a.backends = [b for b in a.backends.split(",") if b]
    for b in a.backends:
        if b not in ALL_BACKENDS:
            die("unknown backend %r (%s)" % (b, ", ".join(ALL_BACKENDS)))
    if a.repeat < 1 or (a.dataset_mb is not None and a.dataset_mb < 1):
        die("--repeat and --dataset-mb must be positive")
    exes = {"hearth": os.path.abspath(a.hearth), "restic": os.path.abspath(a.restic)}
    for t, e in exes.items():
        if not (os.path.isfile(e) and os.access(e, os.X_OK)):
            die("%s not found or not executable: %s" % (t, e))
    for need, what in (("/usr/bin/time", "time"), ("openssl", "openssl"), ("rclone", "rclone"),
                       ("/usr/sbin/sshd", "openssh-server"), ("ssh-keygen", "openssh-client")):
        if "rest" not in a.backends and what == "rclone":
            continue
        if not shutil.which(need):
            die("%s not found (Debian package %s)" % (need, what))
    if "s3" in a.backends and not os.access(a.s3rver, os.X_OK):
        die("s3rver not found: %s (--s3rver or S3RVER)" % a.s3rver)

    a.workdir = os.path.abspath(a.workdir)
    logs = os.path.join(a.workdir, "logs")
    os.makedirs(logs, exist_ok=True)
    PASSWORD_FILE[0] = os.path.join(a.workdir, "password")
    with open(os.open(PASSWORD_FILE[0], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
        f.write(PASSWORD)

    full = os.path.join(a.dataset_dir, "dataset-%dmb" % a.size_mb)
    if not os.path.exists(full + ".complete"):
        if not os.path.isfile(a.dataset_script):
            die("dataset %s absent and dataset script not found: %s" % (full, a.dataset_script))
        bench.rmtree(full)
        os.makedirs(a.dataset_dir, exist_ok=True)
        log("creating the dataset (%d MB) in %s" % (a.size_mb, full))
        bench.run([sys.executable, a.dataset_script, full, "--mb", str(a.size_mb)])
        open(full + ".complete", "w").close()
    src = make_subset(a, full)
    files, size = bench.tree_stats(src)

    fs = subprocess.run(["df", "-PT", a.workdir], capture_output=True, text=True).stdout.splitlines()[-1].split()
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "cpu": bench_first_line("/proc/cpuinfo", "model name"), "cores": os.cpu_count(),
            "ram_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "kernel": platform.release(), "workdir_fs": "%s (%s)" % (fs[0], fs[1]),
            "loadavg_start": os.getloadavg(), "dataset": src, "dataset_files": files,
            "dataset_bytes": size, "peers": {},
            "versions": {"hearth": first_out([exes["hearth"], "version"]),
                         "restic": first_out([exes["restic"], "version"])},
            "args": dict(vars(a))}
    log("dataset %s: %d files, %.1f MB" % (src, files, size / 1e6))

    peers = []

    def cleanup(*_):
        for p in peers:
            p.stop()
        if _:
            sys.exit(130)

    signal.signal(signal.SIGTERM, cleanup)
    signal.signal(signal.SIGINT, cleanup)
    samples = []
    try:
        for be in a.backends:
            peer = {"rest": lambda: Rest(a.workdir, logs), "s3": lambda: S3(a.workdir, logs, a.s3rver),
                    "sftp": lambda: Sftp(a.workdir, logs)}[be]()
            peers.append(peer)
            try:
                peer.start()
            except (RuntimeError, subprocess.CalledProcessError, OSError) as e:
                log("%s: peer failed: %s" % (be, e))
                for rep in range(1, a.repeat + 1):
                    for t in ("hearth", "restic"):
                        samples.append({"backend": be, "tool": t, "rep": rep, "error": "peer failed: %s" % e})
                continue
            meta["peers"][be] = peer.version()
            if be == "s3":  # the bucket, made by restic (s3rver starts empty)
                args, extra = peer.args("restic", "probe")
                r = subprocess.run([exes["restic"]] + args + ["init"], capture_output=True,
                                   env=tool_env("restic", a.workdir, extra))
                peer.drop_repo("probe")
            hearth_dead = None
            for rep in range(1, a.repeat + 1):
                order = ("hearth", "restic") if rep % 2 else ("restic", "hearth")
                for t in order:
                    if t == "hearth" and hearth_dead:
                        samples.append({"backend": be, "tool": t, "rep": rep,
                                        "error": "skipped: " + hearth_dead})
                        continue
                    log("%s rep %d/%d: %s" % (be, rep, a.repeat, t))
                    s = one(a, peer, t, exes[t], rep, src)
                    samples.append(s)
                    if s["error"]:
                        if t == "hearth" and rep == 1:
                            hearth_dead = s["error"]  # backend not usable: skip the other repetitions
                    else:
                        log("  %.2f s, %.0f MB/s, %.0f MiB RSS, client %.0f%% CPU, peer %s, machine %.0f%%" % (
                            s["wall_s"], size / 1e6 / s["wall_s"], s["rss_mib"],
                            (s["user_s"] + s["sys_s"]) / s["wall_s"] * 100,
                            "%.0f%%" % (s["peer_cpu_s"] / s["wall_s"] * 100) if s["peer_cpu_s"] is not None else "?",
                            s["machine_busy_pct"]))
            peer.stop()
    finally:
        cleanup()

    meta["loadavg_end"] = os.getloadavg()
    md = report(a, meta, samples)
    print(md)
    os.makedirs(a.results_dir, exist_ok=True)
    day = datetime.datetime.now().strftime("%Y-%m-%d")
    name, n = day + "-remote", 1
    while os.path.exists(os.path.join(a.results_dir, name + ".md")):
        n += 1
        name = "%s-remote-%d" % (day, n)
    with open(os.path.join(a.results_dir, name + ".md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.results_dir, name + ".json"), "w") as f:
        json.dump({"meta": meta, "samples": samples}, f, indent=1)
    log("wrote %s.{md,json}" % os.path.join(a.results_dir, name))
    failed = any(s.get("error") for s in samples)
    if failed:
        log("logs kept in %s" % logs)
    else:
        bench.rmtree(logs)
    os.unlink(PASSWORD_FILE[0])
    if a.dataset_mb is not None:
        bench.rmtree(src)
        os.unlink(src + ".complete")
    try:
        os.rmdir(a.workdir)
    except OSError:
        pass
    return 1 if failed else 0


def bench_first_line(path, key):
    try:
        with open(path) as f:
            for line in f:
                if line.startswith(key):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def first_out(argv):
    try:
        out = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        return ((out.stdout or out.stderr).strip().splitlines() or ["?"])[0]
    except (OSError, subprocess.TimeoutExpired) as e:
        return "unknown (%s)" % e


if __name__ == "__main__":
    sys.exit(main())
