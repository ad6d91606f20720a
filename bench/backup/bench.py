#!/usr/bin/env python3
"""Backup benchmark: hearth vs restic vs borg on the same dataset, in the same run.

Usually started through bench/backup/run.sh (which resolves HEARTH). For every tool, condition
(cold / warm page cache) and repetition it runs one pipeline on a fresh repository:

  copy the dataset to SRC (untimed) -> init (untimed)
  backup       first backup of SRC                            (timed)
  incremental  make-dataset.py SRC --mutate P (untimed), backup again (timed)
  restore      restore the latest snapshot to a fresh dir      (timed; then checked, untimed)
  check        restic check --read-data / borg check --verify-data / hearth repo check --read-data

Before each timed phase: `sync`, then for "cold" `echo 3 > /proc/sys/vm/drop_caches`, for "warm"
the phase's input (SRC for backups, the repository for restore and check) is read once. Each
timed command runs under /usr/bin/time -v (max RSS, CPU); wall time is measured around it. The
`sync` after each phase is timed separately ("sync s": data the tool left dirty in the page
cache). The reference is a raw sequential read of the dataset (find | xargs cat > /dev/null).

Same password for all (environment), encryption on for all: restic repository version 2 with
default compression (auto), borg `init -e repokey` with `--compression lz4`, hearth defaults.
Each pipeline gets its own cache/config directories (RESTIC_CACHE_DIR, BORG_BASE_DIR,
XDG_CACHE_HOME, XDG_CONFIG_HOME), kept across its phases and deleted afterwards, so "cold"
means a cold kernel page cache, not a missing tool cache.

Output: a Markdown report (printed, and written to bench/backup/results/<date>.md) and the raw
samples as JSON next to it. MB = 10^6 bytes; MB/s = dataset bytes / seconds.
"""
import argparse
import datetime
import json
import os
import platform
import shutil
import stat
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PASSWORD = "hearth-bench-password"
ALL_TOOLS = ("hearth", "restic", "borg")
ALL_PHASES = ("backup", "incremental", "restore", "check")
ALL_CONDITIONS = ("cold", "warm")


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def die(msg):
    print("bench: error: " + msg, file=sys.stderr)
    sys.exit(2)


# ----------------------------------------------------------------------------- helpers


def run(cmd, **kw):
    return subprocess.run(cmd, check=True, **kw)


def sync():
    os.sync()


def drop_caches():
    sync()
    with open("/proc/sys/vm/drop_caches", "w") as f:
        f.write("3\n")


def cold_available():
    """(True, note) when dropping the page cache works and has an effect here."""
    if os.geteuid() != 0:
        return False, "not root: cannot write /proc/sys/vm/drop_caches"
    try:
        drop_caches()
    except OSError as e:
        return False, "writing /proc/sys/vm/drop_caches failed: %s" % e.strerror
    return True, "page cache dropped with sync; echo 3 > /proc/sys/vm/drop_caches"


def read_all(path):
    """Reads every regular file under path (warms the page cache)."""
    subprocess.run("find %s -type f -print0 | xargs -0 -r cat > /dev/null" % shq(path),
                   shell=True, check=True)


def shq(s):
    return "'" + s.replace("'", "'\\''") + "'"


def du_bytes(path):
    out = subprocess.run(["du", "-sb", path], check=True, capture_output=True, text=True).stdout
    return int(out.split()[0])


def tree_stats(path):
    """(number of regular files, their total size) under path."""
    files = size = 0
    for dp, _, fns in os.walk(path):
        for fn in fns:
            st = os.lstat(os.path.join(dp, fn))
            if stat.S_ISREG(st.st_mode):
                files += 1
                size += st.st_size
    return files, size


def rmtree(path):
    if os.path.lexists(path):
        shutil.rmtree(path)


def timed(cmd, env, cwd, logfile, shell=False):
    """Runs cmd under /usr/bin/time -v; returns a sample dict (wall_s, rss_mib, user_s, sys_s, rc)."""
    with tempfile.NamedTemporaryFile("r", prefix="bench-time-", suffix=".txt", delete=False) as tf:
        tpath = tf.name
    argv = ["/usr/bin/time", "-v", "-o", tpath, "--"] + (["bash", "-c", cmd] if shell else cmd)
    with open(logfile, "ab") as lf:
        lf.write(("\n$ %s\n" % (cmd if shell else " ".join(shq(c) for c in cmd))).encode())
        lf.flush()
        t0 = time.monotonic()
        p = subprocess.run(argv, env=env, cwd=cwd, stdout=lf, stderr=lf, stdin=subprocess.DEVNULL)
        wall = time.monotonic() - t0
    info = {}
    with open(tpath) as f:
        for line in f:
            k, _, v = line.strip().rpartition(": ")
            info[k] = v
    os.unlink(tpath)
    t1 = time.monotonic()
    sync()
    return {"wall_s": round(wall, 3), "sync_s": round(time.monotonic() - t1, 3),
            "rss_mib": round(int(info.get("Maximum resident set size (kbytes)", 0)) / 1024, 1),
            "user_s": float(info.get("User time (seconds)", 0)),
            "sys_s": float(info.get("System time (seconds)", 0)), "rc": p.returncode}


def tail(path, n=25):
    try:
        with open(path, "rb") as f:
            return b"".join(f.readlines()[-n:]).decode("utf-8", "replace")
    except OSError:
        return ""


# ----------------------------------------------------------------------------- tools


class Tool:
    name = ""

    def __init__(self, exe, state):
        self.exe = exe
        self.state = state  # per-pipeline cache/config directory

    def env(self):
        e = dict(os.environ)
        for k in ("RESTIC_REPOSITORY", "RESTIC_PASSWORD_FILE", "RESTIC_PASSWORD_COMMAND",
                  "BORG_REPO", "BORG_PASSCOMMAND", "HEARTH_REPOSITORY"):
            e.pop(k, None)
        e.update({"XDG_CACHE_HOME": os.path.join(self.state, "cache"),
                  "XDG_CONFIG_HOME": os.path.join(self.state, "config")})
        return e

    def version(self):
        try:
            out = subprocess.run(self.version_cmd(), capture_output=True, text=True, timeout=30)
            return (out.stdout or out.stderr).strip().splitlines()[0]
        except (OSError, IndexError, subprocess.TimeoutExpired) as e:
            return "unknown (%s)" % e


class Restic(Tool):
    name = "restic"

    def env(self):
        e = super().env()
        e.update({"RESTIC_PASSWORD": PASSWORD, "RESTIC_CACHE_DIR": os.path.join(self.state, "cache")})
        return e

    def version_cmd(self):
        return [self.exe, "version"]

    def init(self, repo):
        return [self.exe, "-r", repo, "init", "--repository-version", "2"]

    def backup(self, repo, src):
        return [self.exe, "-r", repo, "-q", "backup", src]

    def restore(self, repo, target):
        return [self.exe, "-r", repo, "-q", "restore", "latest", "--target", target]

    def check(self, repo):
        return [self.exe, "-r", repo, "-q", "check", "--read-data"]


class Borg(Tool):
    name = "borg"

    def __init__(self, exe, state):
        super().__init__(exe, state)
        self.archives = 0

    def env(self):
        e = super().env()
        e.update({"BORG_PASSPHRASE": PASSWORD, "BORG_BASE_DIR": self.state,
                  "BORG_RELOCATED_REPO_ACCESS_IS_OK": "yes"})
        return e

    def version_cmd(self):
        return [self.exe, "--version"]

    def init(self, repo):
        return [self.exe, "init", "-e", "repokey", repo]

    def backup(self, repo, src):
        self.archives += 1
        return [self.exe, "create", "--compression", "lz4", "%s::a%d" % (repo, self.archives), src]

    def restore(self, repo, target):
        # borg extracts into the working directory (run with cwd=target).
        return [self.exe, "extract", "%s::a%d" % (repo, self.archives)]

    def check(self, repo):
        return [self.exe, "check", "--verify-data", repo]


class Hearth(Tool):
    name = "hearth"

    def env(self):
        e = super().env()
        e.update({"HEARTH_PASSWORD": PASSWORD})
        return e

    def version_cmd(self):
        return [self.exe, "version"]

    def init(self, repo):
        return [self.exe, "repo", "-r", repo, "init"]

    def backup(self, repo, src):
        return [self.exe, "repo", "-r", repo, "-q", "backup", src]

    def restore(self, repo, target):
        return [self.exe, "repo", "-r", repo, "-q", "restore", "latest", "--target", target]

    def check(self, repo):
        return [self.exe, "repo", "-r", repo, "-q", "check", "--read-data"]


TOOL_CLASSES = {"hearth": Hearth, "restic": Restic, "borg": Borg}


def find_restored_root(target, src, base_names):
    """restic restores into TARGET/<absolute SRC>, borg into TARGET/<SRC without '/'>; accept
    those, TARGET/<basename> and TARGET itself: the first holding the dataset's top entries."""
    rel = src.lstrip("/")
    for cand in (os.path.join(target, rel), os.path.join(target, os.path.basename(src)), target):
        if os.path.isdir(cand) and base_names <= set(os.listdir(cand)):
            return cand
    return None


# ----------------------------------------------------------------------------- pipeline


def pipeline(a, tool_name, exe, cond, rep, base, base_files, base_bytes):
    w = a.workdir
    src = os.path.join(w, "src")
    repo = os.path.join(w, "repo-" + tool_name)
    target = os.path.join(w, "restore")
    state = os.path.join(w, "state-" + tool_name)
    logfile = os.path.join(w, "logs", "%s-%s-%d.log" % (tool_name, cond, rep))
    for p in (src, repo, target, state):
        rmtree(p)
    os.makedirs(state)
    tool = TOOL_CLASSES[tool_name](exe, state)
    env = tool.env()
    out = {"tool": tool_name, "condition": cond, "rep": rep, "phases": {}, "error": None}

    def prepare(warm_path):
        sync()
        if cond == "cold":
            drop_caches()
        else:
            read_all(warm_path)

    def phase(name, cmd, warm_path, cwd=None):
        prepare(warm_path)
        s = timed(cmd, env, cwd or w, logfile)
        out["phases"][name] = s
        if s["rc"] != 0:
            raise RuntimeError("%s %s failed (exit %d); log %s:\n%s" % (
                tool_name, name, s["rc"], logfile, tail(logfile)))
        return s

    try:
        run(["cp", "-a", base, src])
        sync()
        with open(logfile, "ab") as lf:
            r = subprocess.run(tool.init(repo), env=env, cwd=w, stdout=lf, stderr=lf,
                               stdin=subprocess.DEVNULL)
        if r.returncode != 0:
            raise RuntimeError("%s init failed (exit %d):\n%s" % (tool_name, r.returncode, tail(logfile)))
        phase("backup", tool.backup(repo, src), src)
        out["stored_first"] = du_bytes(repo)
        if "incremental" in a.phases:
            with open(logfile, "ab") as lf:
                run([sys.executable, a.dataset_script, src, "--mutate", str(a.mutate_percent),
                     "--seed", "2"], stdout=lf, stderr=lf)
            phase("incremental", tool.backup(repo, src), src)
            out["stored_incremental"] = du_bytes(repo)
        if "restore" in a.phases:
            os.makedirs(target)
            s = phase("restore", tool.restore(repo, target), repo, cwd=target)
            got = find_restored_root(target, src, set(os.listdir(base)))
            if got is None:
                s["verify"] = "restored tree not found under %s" % target
            else:
                files, size = tree_stats(got)
                s["verify"] = "ok" if (files, size) == (base_files, base_bytes) else \
                    "mismatch: %d files, %d bytes (expected %d, %d)" % (files, size, base_files, base_bytes)
                if s["verify"] == "ok" and a.verify_content:
                    d = subprocess.run(["diff", "-rq", src, got], capture_output=True, text=True)
                    if d.returncode != 0:
                        s["verify"] = "content differs: " + (d.stdout + d.stderr)[:300]
            if s["verify"] != "ok":
                log("%s restore: %s" % (tool_name, s["verify"]))
            rmtree(target)
        if "check" in a.phases:
            phase("check", tool.check(repo), repo)
    except (RuntimeError, subprocess.CalledProcessError) as e:
        out["error"] = str(e)
        log("%s/%s/rep %d: %s" % (tool_name, cond, rep, e))
    finally:
        for p in (src, repo, target, state):
            rmtree(p)
    return out


def raw_read(a, cond, base):
    sync()
    if cond == "cold":
        drop_caches()
    else:
        read_all(base)
    return timed("find %s -type f -print0 | xargs -0 -r cat > /dev/null" % shq(base), None, a.workdir,
                 os.path.join(a.workdir, "logs", "raw-read.log"), shell=True)


# ----------------------------------------------------------------------------- report


def fmt(x, nd=1):
    return "—" if x is None else ("%.*f" % (nd, x))


def report(a, meta, samples):
    lines = []
    L = lines.append
    L("# Backup benchmark, %s" % meta["date"])
    L("")
    L("- Machine: %s, %d cores, %.1f GiB RAM, kernel %s; workdir %s on %s" % (
        meta["cpu"], meta["cores"], meta["ram_gib"], meta["kernel"], a.workdir, meta["workdir_fs"]))
    L("- Dataset: make-dataset.py --mb %d (%d files, %.1f MB); incremental after --mutate %d "
      "(--seed 2)" % (a.size_mb, meta["dataset_files"], meta["dataset_bytes"] / 1e6, a.mutate_percent))
    L("- Tools: " + "; ".join("%s: %s" % (t, v) for t, v in meta["versions"].items()))
    L("- Settings: restic repository v2, compression auto; borg repokey, lz4; hearth defaults; "
      "same password (env) for all")
    L("- Repetitions: %d per cell (min and median); conditions: %s" % (
        a.repeat, ", ".join(a.conditions)))
    L("- Cold cache: %s" % meta["cold_note"])
    L("- Load average (1, 5, 15 min) at start %s, at end %s%s" % (
        "/".join("%.1f" % x for x in meta["loadavg_start"]),
        "/".join("%.1f" % x for x in meta["loadavg_end"]),
        " — NOTE: other work was running; numbers are noisy"
        if max(meta["loadavg_start"][0], meta["loadavg_end"][0]) > 0.5 * meta["cores"] else ""))
    L("- `sync s`: median time of the `sync` after the phase (data the tool left unwritten); "
      "`vs restic`: median / restic's median for the same phase and cache (below 1: faster); "
      "MB/s: dataset bytes / median s")
    L("")
    L("| phase | cache | tool | min s | median s | MB/s | max RSS MiB | sync s | vs restic | note |")
    L("|---|---|---|---:|---:|---:|---:|---:|---:|---|")
    med = {}
    rows = []
    for ph in ("read",) + tuple(p for p in ALL_PHASES if p in a.phases):
        for cond in a.conditions:
            for tool in (("raw",) if ph == "read" else a.tools):
                ss = [s for s in samples if s["tool"] == tool and s["condition"] == cond
                      and ph in s["phases"]]
                ok = [s["phases"][ph] for s in ss if s["phases"][ph]["rc"] == 0]
                note = []
                errs = sum(1 for s in ss if s["phases"][ph]["rc"] != 0)
                if errs:
                    note.append("%d failed" % errs)
                bad = [s["phases"][ph].get("verify") for s in ss
                       if s["phases"][ph].get("verify") not in (None, "ok")]
                if bad:
                    note.append("VERIFY: " + bad[0][:60])
                if cond == "cold" and not meta["cold_ok"]:
                    note.append("cold unavailable")
                if not ok:
                    rows.append((ph, cond, tool, None, None, None, None, None, "; ".join(note) or "no data"))
                    continue
                walls = [o["wall_s"] for o in ok]
                m = statistics.median(walls)
                med[(ph, cond, tool)] = m
                rows.append((ph, cond, tool, min(walls), m, meta["dataset_bytes"] / 1e6 / m,
                             max(o["rss_mib"] for o in ok), statistics.median(o["sync_s"] for o in ok),
                             "; ".join(note)))
    for ph, cond, tool, mn, m, mbs, rss, sy, note in rows:
        ref = med.get((ph, cond, "restic"))
        ratio = (m / ref) if (m is not None and ref and tool != "raw") else None
        L("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
            ph, cond, tool, fmt(mn, 2), fmt(m, 2), fmt(mbs, 0), fmt(rss, 0), fmt(sy, 2),
            fmt(ratio, 2) + ("×" if ratio is not None else ""), note))
    L("")
    L("Stored size (du -sb of the repository, median over pipelines):")
    L("")
    L("| tool | after first MB | after incremental MB | incremental added MB | first / dataset |")
    L("|---|---:|---:|---:|---:|")
    for tool in a.tools:
        first = [s["stored_first"] for s in samples if s["tool"] == tool and "stored_first" in s]
        inc = [s["stored_incremental"] for s in samples if s["tool"] == tool and "stored_incremental" in s]
        f = statistics.median(first) if first else None
        i = statistics.median(inc) if inc else None
        L("| %s | %s | %s | %s | %s |" % (
            tool, fmt(f and f / 1e6), fmt(i and i / 1e6), fmt((i - f) / 1e6 if f and i else None),
            ("%.1f%%" % (100 * f / meta["dataset_bytes"])) if f else "—"))
    errors = [s for s in samples if s.get("error")]
    if errors:
        L("")
        L("Errors:")
        L("")
        for s in errors:
            L("- %s %s rep %d: %s" % (s["tool"], s["condition"], s["rep"],
                                     s["error"].splitlines()[0][:200]))
    return "\n".join(lines) + "\n"


# ----------------------------------------------------------------------------- main


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size-mb", type=int, default=2200, help="dataset size (make-dataset.py --mb)")
    ap.add_argument("--repeat", type=int, default=3, help="pipelines per tool and condition")
    ap.add_argument("--tools", default="hearth,restic,borg")
    ap.add_argument("--phases", default=",".join(ALL_PHASES),
                    help="phases to report (backup always runs: the others need it)")
    ap.add_argument("--conditions", default="cold,warm", help="cold, warm or both")
    ap.add_argument("--workdir", default="/tmp/hearth-bench")
    ap.add_argument("--mutate-percent", type=int, default=5)
    ap.add_argument("--dataset-script", default=os.environ.get(
        "BENCH_DATASET_SCRIPT", "/work/shared/bench/make-dataset.py"))
    ap.add_argument("--hearth", default=os.environ.get("HEARTH", os.path.join(ROOT, "build/release/hearth")))
    ap.add_argument("--restic", default=shutil.which("restic") or "/usr/bin/restic")
    ap.add_argument("--borg", default=shutil.which("borg") or "/usr/bin/borg")
    ap.add_argument("--results-dir", default=os.path.join(HERE, "results"))
    ap.add_argument("--verify-content", action="store_true",
                    help="after each restore also diff -r the contents (untimed, slow)")
    ap.add_argument("--keep-dataset", action="store_true",
                    help="keep WORKDIR/dataset-MBmb for the next run (default: delete it at the end)")
    a = ap.parse_args()

    a.tools = [t for t in a.tools.split(",") if t]
    a.phases = [p for p in a.phases.split(",") if p]
    a.conditions = [c for c in a.conditions.split(",") if c]
    for t in a.tools:
        if t not in ALL_TOOLS:
            die("unknown tool %r (hearth, restic, borg)" % t)
    for p in a.phases:
        if p not in ALL_PHASES:
            die("unknown phase %r (%s)" % (p, ", ".join(ALL_PHASES)))
    for c in a.conditions:
        if c not in ALL_CONDITIONS:
            die("unknown condition %r (cold, warm)" % c)
    if a.repeat < 1 or a.size_mb < 1:
        die("--repeat and --size-mb must be positive")
    if "backup" not in a.phases:
        a.phases.insert(0, "backup")  # everything else needs it; reported as well
    exes = {"hearth": a.hearth, "restic": a.restic, "borg": a.borg}
    for t in a.tools:
        if not (os.path.isfile(exes[t]) and os.access(exes[t], os.X_OK)):
            die("%s not found or not executable: %s%s" % (t, exes[t], (
                " (build it: cmake --preset release && cmake --build --preset release --target hearth;"
                " or leave it out: --tools restic,borg)") if t == "hearth" else ""))
        exes[t] = os.path.abspath(exes[t])
    if "hearth" in a.tools:
        probe = subprocess.run([exes["hearth"], "repo", "--help"], capture_output=True, text=True)
        if probe.returncode != 0 or "restore" not in (probe.stdout + probe.stderr).lower():
            die("%s has no working `repo` command (hearth repo --help: exit %d: %s); "
                "leave it out: --tools restic,borg" % (exes["hearth"], probe.returncode,
                                                      (probe.stderr or probe.stdout).strip()[:200]))
    a.dataset_script = os.path.abspath(a.dataset_script)
    if not os.path.isfile(a.dataset_script):
        die("dataset script not found: %s (--dataset-script)" % a.dataset_script)
    if not os.access("/usr/bin/time", os.X_OK):
        die("/usr/bin/time not found (Debian package time; scripts/setup.sh)")
    a.workdir = os.path.abspath(a.workdir)
    os.makedirs(os.path.join(a.workdir, "logs"), exist_ok=True)

    cold_ok, cold_note = cold_available()
    if not cold_ok:
        log("cold runs unavailable: " + cold_note)
        a.conditions = [c for c in a.conditions if c != "cold"] or ["warm"]

    base = os.path.join(a.workdir, "dataset-%dmb" % a.size_mb)
    stamp = base + ".complete"
    if not os.path.exists(stamp):
        rmtree(base)
        log("creating the dataset (%d MB) in %s" % (a.size_mb, base))
        t0 = time.monotonic()
        run([sys.executable, a.dataset_script, base, "--mb", str(a.size_mb)])
        open(stamp, "w").close()
        log("dataset created in %.0f s" % (time.monotonic() - t0))
    base_files, base_bytes = tree_stats(base)
    need = base_bytes * 4 + (1 << 30)
    free = shutil.disk_usage(a.workdir).free
    if free < need:
        die("workdir %s has %.1f GB free, need about %.1f GB" % (a.workdir, free / 1e9, need / 1e9))

    def first_line(path, key):
        try:
            with open(path) as f:
                for line in f:
                    if line.startswith(key):
                        return line.split(":", 1)[1].strip()
        except OSError:
            pass
        return "unknown"

    fs = subprocess.run(["df", "-PT", a.workdir], capture_output=True, text=True).stdout.splitlines()[-1].split()
    meta = {"date": datetime.datetime.now().strftime("%Y-%m-%d %H:%M:%S"),
            "cpu": first_line("/proc/cpuinfo", "model name"), "cores": os.cpu_count(),
            "ram_gib": os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30,
            "kernel": platform.release(), "workdir_fs": "%s (%s)" % (fs[0], fs[1]),
            "loadavg_start": os.getloadavg(), "dataset_files": base_files, "dataset_bytes": base_bytes, "cold_ok": cold_ok,
            "cold_note": cold_note if cold_ok else "UNAVAILABLE (%s); cold rows skipped" % cold_note,
            "versions": {t: TOOL_CLASSES[t](exes[t], a.workdir).version() for t in a.tools},
            "args": {k: v for k, v in vars(a).items()}}

    samples = []
    for rep in range(1, a.repeat + 1):
        for cond in a.conditions:
            log("rep %d/%d, %s: raw read" % (rep, a.repeat, cond))
            samples.append({"tool": "raw", "condition": cond, "rep": rep,
                            "phases": {"read": raw_read(a, cond, base)}})
            for tool in a.tools:
                log("rep %d/%d, %s: %s" % (rep, a.repeat, cond, tool))
                t0 = time.monotonic()
                s = pipeline(a, tool, exes[tool], cond, rep, base, base_files, base_bytes)
                samples.append(s)
                log("  %s" % ", ".join("%s %.2fs" % (k, v["wall_s"]) for k, v in s["phases"].items())
                    + " (pipeline %.0f s)" % (time.monotonic() - t0))

    meta["loadavg_end"] = os.getloadavg()
    md = report(a, meta, samples)
    print(md)
    os.makedirs(a.results_dir, exist_ok=True)
    name = datetime.datetime.now().strftime("%Y-%m-%d")
    n = 1
    while os.path.exists(os.path.join(a.results_dir, name + ".md")):
        n += 1
        name = datetime.datetime.now().strftime("%Y-%m-%d") + "-%d" % n
    with open(os.path.join(a.results_dir, name + ".md"), "w") as f:
        f.write(md)
    with open(os.path.join(a.results_dir, name + ".json"), "w") as f:
        json.dump({"meta": meta, "samples": samples}, f, indent=1)
    log("wrote %s.{md,json}" % os.path.join(a.results_dir, name))
    failed = any(s.get("error") for s in samples)
    if not a.keep_dataset:
        rmtree(base)
        os.unlink(stamp)
    if failed:
        log("logs kept in %s" % os.path.join(a.workdir, "logs"))
    else:
        rmtree(os.path.join(a.workdir, "logs"))
    try:
        os.rmdir(a.workdir)  # only when nothing else is left in it
    except OSError:
        pass
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
