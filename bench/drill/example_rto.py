#!/usr/bin/env python3
"""Drill RTO of the example lab's database, from each of its three copies.

Runs on a private copy of examples/home: starts the demo NAS and offsite
(scripts/demo-peers.sh), `hearth up`, one `hearth backup run critical`, then
`hearth drill run db --from REPO -o json` --repeat times per repository (local,
nas, offsite), in alternating order. Reports the drill's RTO (start of the
drill to healthy in its sandbox), the whole drill's wall time, and, as the
peer's figure for the restore step alone, `restic restore` of the same
snapshot from the same repository into a temp dir.

Usage (as root, after scripts/setup.sh and scripts/npm-tools.sh):
  bench/drill/example_rto.py [--hearth build/main-rel/hearth] [--repeat 5]
                             [--rows 200000] [--out bench/drill/results/DATE-example-rto.md]
--rows: extra rows written into the database before the backup, so that the
dump (and the restore) is not trivially small.
"""
import argparse
import datetime
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, **kw)


def must(argv, **kw):
    r = run(argv, **kw)
    if r.returncode != 0:
        sys.exit(f"example_rto: {' '.join(argv)} failed ({r.returncode}):\n{r.stdout}\n{r.stderr}")
    return r


def wait_healthy(lab, seconds=90):
    status = os.path.join(lab, ".hearth", "daemon-status.json")
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            with open(status) as f:
                st = json.load(f)
            svcs = st.get("services", [])
            if len(svcs) == 6 and all(s.get("state") == "healthy" for s in svcs):
                return
        except (OSError, ValueError):
            pass
        time.sleep(0.2)
    sys.exit("example_rto: the example lab did not become healthy")


def restic_env_and_repo(lab, name, password):
    peers = os.path.join(lab, ".hearth", "demo-peers")
    env = dict(os.environ, RESTIC_PASSWORD=password, AWS_ACCESS_KEY_ID="S3RVER",
               AWS_SECRET_ACCESS_KEY="S3RVER")
    if name == "local":
        return env, ["-r", os.path.join(lab, ".hearth", "backup", "restic")]
    if name == "nas":
        cmd = (f"ssh -p 2222 -i {peers}/client_key -o UserKnownHostsFile={peers}/known_hosts "
               "-o StrictHostKeyChecking=yes root@127.0.0.1 -s sftp")
        return env, ["-r", "sftp:root@127.0.0.1:restic", "-o", f"sftp.command={cmd}"]
    return env, ["-r", "s3:https://127.0.0.1:4568/offsite/restic", "--cacert",
                 f"{peers}/offsite-ca.pem"]


def fmt(xs):
    return f"{min(xs):.2f} / {statistics.median(xs):.2f}"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--hearth", default=os.path.join(ROOT, "build", "main-rel", "hearth"))
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--rows", type=int, default=200000)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("example_rto: run as root (PostgreSQL runs as postgres, drills need a namespace)")
    hearth = os.path.abspath(a.hearth)
    tmp = tempfile.mkdtemp(prefix="hearth-rto-")
    os.chmod(tmp, 0o755)
    lab = os.path.join(tmp, "home")
    shutil.copytree(os.path.join(ROOT, "examples", "home"), lab,
                    ignore=shutil.ignore_patterns(".hearth"))
    peers_script = os.path.join(ROOT, "scripts", "demo-peers.sh")
    daemon = None
    try:
        must([peers_script, "start", lab])
        log = open(os.path.join(tmp, "up.log"), "w")
        daemon = subprocess.Popen([hearth, "--lab", lab, "up", "--listen", "127.0.0.1:0"],
                                  stdout=log, stderr=subprocess.STDOUT, cwd=lab)
        wait_healthy(lab)
        if a.rows:
            must(["psql", "-h", "127.0.0.1", "-p", "5433", "-U", "postgres", "-q", "-c",
                  "create table bench_rows as select g as id, md5(g::text) as v "
                  f"from generate_series(1, {a.rows}) g"])
        must([hearth, "--lab", lab, "backup", "run", "critical"])
        password = must([hearth, "--lab", lab, "secret", "get",
                         "backup.repo_password"]).stdout.strip()
        repos = ["local", "nas", "offsite"]
        samples = {r: {"rto": [], "wall": [], "restore": [], "restic_restore": [], "bytes": 0}
                   for r in repos}
        for i in range(a.repeat):
            order = repos if i % 2 == 0 else list(reversed(repos))
            for repo in order:
                t0 = time.monotonic()
                r = must([hearth, "--lab", lab, "-o", "json", "drill", "run", "db", "--from", repo])
                wall = time.monotonic() - t0
                d = json.loads(r.stdout)[0]
                if not d["passed"]:
                    sys.exit(f"example_rto: drill from {repo} failed: {d['reason']}")
                samples[repo]["rto"].append(d["rto_s"])
                samples[repo]["wall"].append(wall)
                samples[repo]["bytes"] = d["bytes_restored"]
                # Steps read "  1.23s restored N files, B bytes": the restore's end.
                for step in d["steps"]:
                    at, _, what = step.strip().partition("s ")
                    if what.startswith("restored "):
                        samples[repo]["restore"].append(float(at))
                snap = d["snapshot"]
                env, rargs = restic_env_and_repo(lab, repo, password)
                target = tempfile.mkdtemp(prefix="restic-restore-", dir=tmp)
                t0 = time.monotonic()
                must(["restic", "--no-cache", *rargs, "restore", snap, "--target", target], env=env)
                samples[repo]["restic_restore"].append(time.monotonic() - t0)
                shutil.rmtree(target)
        load = os.getloadavg()
        lines = [
            f"# Drill RTO of the example lab's database ({datetime.date.today()})",
            "",
            f"`bench/drill/example_rto.py --repeat {a.repeat} --rows {a.rows}`: examples/home with "
            "the demo NAS (OpenSSH sshd, SFTP) and offsite (s3rver, HTTPS) on 127.0.0.1; "
            f"`hearth drill run db --from REPO`, {a.repeat} runs per repository, alternating order. "
            "RTO is the drill's own figure: start of the drill to the restored PostgreSQL "
            "healthy in its network namespace (restore the dump, initdb, load the dump, start). "
            "The drill column is the whole command (RTO plus canary query and teardown); the "
            "restore step is the drill's time from its start to the end of the restore "
            "(opening the repository included). "
            "`restic restore` is restic 0.14 restoring the same snapshot from the same "
            "repository, for the restore step alone.",
            "",
            f"Load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}.",
            "",
            "| from | restored | RTO min / median s | whole drill min / median s "
            "| restore step in the drill min / median s | restic restore alone min / median s |",
            "|---|---|---|---|---|---|",
        ]
        for repo in repos:
            s = samples[repo]
            lines.append(f"| {repo} | {s['bytes'] / 1e6:.1f} MB | {fmt(s['rto'])} | "
                         f"{fmt(s['wall'])} | {fmt(s['restore'])} | {fmt(s['restic_restore'])} |")
        report = "\n".join(lines) + "\n"
        print(report)
        out = a.out or os.path.join(ROOT, "bench", "drill", "results",
                                    f"{datetime.date.today()}-example-rto.md")
        os.makedirs(os.path.dirname(out), exist_ok=True)
        with open(out, "w") as f:
            f.write(report)
        with open(out[:-3] + ".json", "w") as f:
            json.dump(samples, f, indent=1)
    finally:
        if daemon is not None:
            run([hearth, "--lab", lab, "down"])
            try:
                daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                daemon.send_signal(signal.SIGKILL)
        run([peers_script, "stop", lab])
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
