"""Offline checks of the deployment files: Dockerfile, .dockerignore, docker-compose.yml, .env.example and
the Helm chart. Run by .ci/test-deploy inside its venv; prints one line per check and a closing
`N passed, N failed` line, and exits non-zero when any check failed.

No docker engine, helm CLI or cluster is needed: the chart is rendered with helm-python-sdk (the Helm Go
SDK), manifests are validated with kubernetes-validate, the compose file with the compose-spec schema,
and the Dockerfile's build steps are replayed on a staged copy of the build context.
"""

from __future__ import annotations

import glob
import json
import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import traceback
import urllib.request
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
CHART = REPO / "helm" / "gpt-load"
VALUES_DIR = Path(__file__).resolve().parent / "values"
VENV_BIN = Path(sys.executable).parent
TARGET_DIR = Path(os.environ.get("CARGO_TARGET_DIR", "/var/tmp/gpt-load-target"))
# Cargo names path crates by their path inside the workspace, so a staged copy sharing TARGET_DIR could
# be judged fresh from the real tree's artifacts and hide a missing COPY: it gets a target dir of its own.
STAGED_TARGET_DIR = Path(os.environ.get("GPT_LOAD_STAGED_TARGET_DIR", f"{TARGET_DIR}-docker-context"))
KUBE_VERSIONS = ["1.25.0", "1.37.0"]  # the chart's kubeVersion floor and the newest schemas shipped
# Variables that are not the app's (config.rs) but that the deployment files must still document.
EXTRA_APP_VARS = ["TZ"]
SECRET_VARS = ["AUTH_KEY", "ENCRYPTION_KEY", "DATABASE_DSN", "REDIS_DSN"]
COMPOSE_ONLY_VARS = ["COMPOSE_PROFILES", "MYSQL_ROOT_PASSWORD", "POSTGRES_PASSWORD"]


class Skip(Exception):
    """A check that cannot run here; counted apart from passes and failures."""


class Runner:
    def __init__(self) -> None:
        self.passed = 0
        self.failed = 0
        self.skipped = 0

    def check(self, name: str, fn, *args) -> None:
        started = time.monotonic()
        try:
            fn(*args)
        except Skip as why:
            self.skipped += 1
            print(f"skip {name}: {why}", flush=True)
            return
        except Exception as err:  # noqa: BLE001 - every failure is reported, then counted
            self.failed += 1
            detail = str(err) or traceback.format_exc(limit=3)
            print(f"FAIL {name} ({time.monotonic() - started:.1f}s)\n     {detail}", flush=True)
            return
        self.passed += 1
        print(f"ok   {name} ({time.monotonic() - started:.1f}s)", flush=True)

    def summary(self) -> int:
        line = f"{self.passed} passed, {self.failed} failed"
        if self.skipped:
            line += f", {self.skipped} skipped"
        print(line)
        return 1 if self.failed else 0


def run(cmd: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, capture_output=True, text=True, **kw)


def expect(cond: bool, message: str) -> None:
    if not cond:
        raise AssertionError(message)


# ---------------------------------------------------------------------------------------------------
# The app's environment variables, read from the source so the deployment files cannot drift from it.

def app_env_vars() -> list[str]:
    source = (REPO / "src" / "config.rs").read_text()
    names = re.findall(r'(?:env\s*\.(?:string|int|bool|list)|raw_set)\(\s*(?:vars,\s*)?"([A-Z][A-Z0-9_]+)"', source)
    expect(len(names) >= 20, f"found only {len(names)} variables in src/config.rs; the pattern is stale")
    return sorted(set(names) | set(EXTRA_APP_VARS))


def env_example() -> list[tuple[str, str, str]]:
    """(name, value, the line above) for every assignment in .env.example."""
    lines = (REPO / ".env.example").read_text().splitlines()
    out = []
    for i, line in enumerate(lines):
        m = re.match(r"^([A-Z][A-Z0-9_]*)=(.*)$", line)
        if m:
            out.append((m.group(1), m.group(2), lines[i - 1] if i else ""))
    return out


def check_env_example_complete() -> None:
    entries = {name: (value, above) for name, value, above in env_example()}
    missing = [v for v in app_env_vars() + COMPOSE_ONLY_VARS if v not in entries]
    expect(not missing, f".env.example lacks {missing}")
    uncommented = [n for n, (_, above) in entries.items()
                   if not above.startswith("# ") or above.startswith("# ---")]
    expect(not uncommented, f"no one-line comment directly above {uncommented} in .env.example")


def check_env_example_has_no_secret() -> None:
    entries = {name: value for name, value, _ in env_example()}
    filled = [n for n in SECRET_VARS + ["MYSQL_ROOT_PASSWORD", "POSTGRES_PASSWORD"] if entries.get(n)]
    expect(not filled, f".env.example must leave secrets empty, but sets {filled}")


def check_env_defaults_match_chart() -> None:
    entries = {name: value for name, value, _ in env_example()}
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    config = values["config"]
    schema = json.loads((CHART / "values.schema.json").read_text())
    schema_names = set(schema["properties"]["config"]["properties"])
    wanted = [v for v in app_env_vars() if v not in SECRET_VARS + ["IS_SLAVE"]]
    expect(sorted(config) == sorted(wanted), f"chart config keys {sorted(config)} != app variables {wanted}")
    expect(schema_names == set(wanted), f"schema config keys differ from {wanted}")
    differ = {k: (str(v).lower(), entries[k]) for k, v in config.items() if str(v).lower() != entries[k].lower()}
    expect(not differ, f"chart defaults differ from .env.example (chart, .env.example): {differ}")


# ---------------------------------------------------------------------------------------------------
# Dockerfile and build context

def dockerfile_instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    out, buf = [], ""
    for raw in (REPO / "Dockerfile").read_text().splitlines():
        line = raw.strip()
        if not buf and (not line or line.startswith("#")):
            continue
        if buf and line.startswith("#"):
            continue  # comment lines inside a continued instruction are dropped by docker too
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def dockerfile_stages() -> list[dict]:
    stages: list[dict] = []
    for ins, args in dockerfile_instructions():
        if ins == "FROM":
            parts = args.split()
            name = parts[2] if len(parts) >= 3 and parts[1].upper() == "AS" else None
            stages.append({"base": parts[0], "name": name, "ins": []})
        elif stages:
            stages[-1]["ins"].append((ins, args))
    return stages


def split_flags(args: str) -> tuple[dict, list[str]]:
    words = shlex.split(args)
    flags = {}
    while words and words[0].startswith("--"):
        key, _, value = words.pop(0)[2:].partition("=")
        flags.setdefault(key, []).append(value)
    return flags, words


def copy_sources(args: str) -> tuple[dict, list[str], str]:
    flags, words = split_flags(args)
    if words and words[0].startswith("["):
        words = json.loads(args[args.index("["):])
    return flags, words[:-1], words[-1]


class DockerIgnore:
    """.dockerignore semantics: patterns anchored at the context root, `**` spans directories, a
    match on a directory excludes everything below it, later `!` lines re-include."""

    def __init__(self, text: str) -> None:
        self.rules = []
        for line in text.splitlines():
            line = line.strip()
            if not line or line.startswith("#"):
                continue
            negate = line.startswith("!")
            pattern = os.path.normpath(line.lstrip("!").strip().lstrip("/"))
            self.rules.append((negate, self._regex(pattern)))

    @staticmethod
    def _regex(pattern: str) -> re.Pattern:
        out, i = "", 0
        while i < len(pattern):
            if pattern.startswith("**/", i):
                out, i = out + "(?:.*/)?", i + 3
            elif pattern.startswith("**", i):
                out, i = out + ".*", i + 2
            elif pattern[i] == "*":
                out, i = out + "[^/]*", i + 1
            elif pattern[i] == "?":
                out, i = out + "[^/]", i + 1
            elif pattern[i] == "[" and "]" in pattern[i:]:
                end = pattern.index("]", i)
                out, i = out + "[" + pattern[i + 1:end].replace("!", "^", 1) + "]", end + 1
            else:
                out, i = out + re.escape(pattern[i]), i + 1
        return re.compile(out + "$")

    def excluded(self, rel: str) -> bool:
        parts = rel.split("/")
        result = False
        for negate, rx in self.rules:
            for depth in range(1, len(parts) + 1):
                if rx.match("/".join(parts[:depth])):
                    result = not negate
                    break
        return result


def dockerignore() -> DockerIgnore:
    return DockerIgnore((REPO / ".dockerignore").read_text())


def check_dockerignore() -> None:
    ign = dockerignore()
    for path in ["target/release/gpt-load", "tests/mock-upstream/target/x", "node_modules/vue/index.js",
                 "web-admin/node_modules/vue/index.js", "data/gpt-load.db", "data/mysql/ibdata1",
                 ".env", ".git/config", "web-admin/dist/index.html", "x.db-wal"]:
        expect(ign.excluded(path), f".dockerignore does not exclude {path}")
    for path in ["src/main.rs", "Cargo.lock", "migrations/sqlite", "web-admin/src/main.ts",
                 ".env.example", "actors/src/lib.rs", "tests/mock-upstream/Cargo.toml"]:
        expect(not ign.excluded(path), f".dockerignore wrongly excludes {path}")


def check_dockerfile_copies_exist() -> None:
    ign = dockerignore()
    seen = 0
    for stage in dockerfile_stages():
        for ins, args in stage["ins"]:
            if ins not in ("COPY", "ADD"):
                continue
            flags, sources, _ = copy_sources(args)
            if "from" in flags:
                continue
            for src in sources:
                seen += 1
                matches = glob.glob(str(REPO / src))
                if not any(ch in src for ch in "*?["):
                    expect(bool(matches), f"COPY source {src} does not exist in the repository")
                for m in matches:
                    rel = os.path.relpath(m, REPO)
                    expect(not ign.excluded(rel), f"COPY source {rel} is excluded by .dockerignore")
    expect(seen >= 5, f"only {seen} COPY sources found: the Dockerfile parser is stale")


def check_dockerfile_shape() -> None:
    stages = dockerfile_stages()
    bases = [s["base"] for s in stages]
    expect(bases == ["node:20-bookworm-slim", "rust:1-bookworm", "debian:bookworm-slim"],
           f"base images are {bases}")
    final = dict()
    for ins, args in stages[-1]["ins"]:
        final.setdefault(ins, []).append(args)
    user = final.get("USER", [""])[-1]
    expect(re.fullmatch(r"[1-9][0-9]*(:[0-9]+)?", user) is not None, f"runtime USER {user!r} is not a numeric non-root id")
    expect("3001" in " ".join(final.get("EXPOSE", [])), "EXPOSE 3001 missing")
    expect("/app/data" in " ".join(final.get("VOLUME", [])), "VOLUME /app/data missing")
    expect(final.get("WORKDIR", [""])[-1] == "/app", "WORKDIR is not /app (DATABASE_DSN defaults to ./data)")
    entry = json.loads(final["ENTRYPOINT"][-1])
    expect(entry == ["/app/gpt-load"], f"ENTRYPOINT {entry} is not the binary in exec form")
    expect(json.loads(final["CMD"][-1]) == ["serve"], "CMD is not [\"serve\"]")
    installs = " ".join(final.get("RUN", []))
    for pkg in ["ca-certificates", "tzdata"]:
        expect(pkg in installs, f"runtime stage does not install {pkg}")
    health = healthcheck_argv()
    for tool in ["curl", "wget"]:
        if tool in " ".join(health):
            expect(re.search(rf"install[^&]*\b{tool}\b", installs) is not None, f"HEALTHCHECK uses {tool}, which is not installed")
    # The runtime copies exactly what the build stage installs.
    built = re.search(r"install -m 0755 \S+ (\S+)", " ".join(a for i, a in stages[1]["ins"] if i == "RUN"))
    expect(built is not None, "build stage does not install the binary to a fixed path")
    copies = [copy_sources(a) for i, a in stages[-1]["ins"] if i == "COPY"]
    expect(any(f.get("from") == [stages[1]["name"]] and built.group(1) in s for f, s, _ in copies),
           f"runtime stage does not COPY --from={stages[1]['name']} {built.group(1)}")


def healthcheck_argv() -> list[str]:
    for stage in dockerfile_stages()[-1:]:
        for ins, args in stage["ins"]:
            if ins == "HEALTHCHECK":
                m = re.search(r"CMD\s+(\[.*\])\s*$", args)
                expect(m is not None, "HEALTHCHECK is not in exec form")
                return json.loads(m.group(1))
    raise AssertionError("no HEALTHCHECK in the runtime stage")


def check_hadolint() -> None:
    exe = VENV_BIN / "hadolint"
    if not exe.exists():
        raise Skip("hadolint is not installed")
    res = run([str(exe), "--failure-threshold", "warning", str(REPO / "Dockerfile")])
    expect(res.returncode == 0, res.stdout + res.stderr)


def stage_context(dest: Path) -> None:
    """Copies the build context as docker would send it (after .dockerignore)."""
    ign = dockerignore()
    for root, dirs, files in os.walk(REPO):
        rel_root = os.path.relpath(root, REPO)
        rel_root = "" if rel_root == "." else rel_root
        dirs[:] = [d for d in dirs if not ign.excluded(os.path.join(rel_root, d) if rel_root else d)]
        for f in files:
            rel = os.path.join(rel_root, f) if rel_root else f
            if not ign.excluded(rel):
                (dest / rel).parent.mkdir(parents=True, exist_ok=True)
                # New mtimes: cargo then rechecks the staged crates instead of trusting earlier runs.
                shutil.copy(REPO / rel, dest / rel, follow_symlinks=False)


def replay_copy(ctx: Path, root: Path, workdir: str, args: str, stage_roots: dict) -> None:
    flags, sources, dst = copy_sources(args)
    src_root = stage_roots[flags["from"][0]] if "from" in flags else ctx
    dst_abs = Path(dst if dst.startswith("/") else os.path.join(workdir, dst))
    target = root / dst_abs.relative_to("/")
    for src in sources:
        base = src_root / src.lstrip("/") if "from" in flags else ctx / src
        for m in sorted(glob.glob(str(base))):
            m = Path(m)
            if m.is_dir():  # docker copies a directory's contents, not the directory
                shutil.copytree(m, target, dirs_exist_ok=True, symlinks=True, copy_function=shutil.copy)
            else:
                dest = target / m.name if dst.endswith("/") or len(sources) > 1 or target.is_dir() else target
                dest.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy(m, dest)


def check_docker_build_replay() -> None:
    """Replays the SPA and Rust stages on a staged context: COPYs as docker does them, the SPA stage's
    RUN as written, and the Rust stage's cargo build as `cargo check` (same flags, no codegen: a
    release build takes 12 minutes on 2 cores). Proves that every file the build needs is COPY'd."""
    stages = dockerfile_stages()
    with tempfile.TemporaryDirectory(prefix="gpt-load-docker-") as tmp:
        tmp = Path(tmp)
        ctx = tmp / "context"
        ctx.mkdir()
        stage_context(ctx)
        stage_roots: dict[str, Path] = {}
        for stage in stages[:2]:
            root = tmp / f"stage-{stage['name']}"
            root.mkdir()
            workdir = "/"
            for ins, args in stage["ins"]:
                if ins == "WORKDIR":
                    workdir = args
                    (root / args.lstrip("/")).mkdir(parents=True, exist_ok=True)
                elif ins == "COPY":
                    replay_copy(ctx, root, workdir, args, stage_roots)
                elif ins == "RUN":
                    command = re.sub(r"^(--\S+\s+)+", "", args)  # BuildKit mounts: caches only
                    cwd = root / workdir.lstrip("/")
                    if "cargo build" in command:
                        cargo_check_staged(cwd, command)
                    else:
                        res = run(["sh", "-c", command], cwd=cwd)
                        expect(res.returncode == 0, f"{stage['name']} stage RUN failed:\n{res.stdout}{res.stderr}")
            stage_roots[stage["name"]] = root
        expect((stage_roots["web"] / "build/web-admin/dist").is_dir(), "the SPA stage produced no dist folder")


def cargo_check_staged(cwd: Path, command: str) -> None:
    m = re.search(r"cargo build ([^&]*)", command)
    expect(m is not None, "no cargo build in the Rust stage")
    args = [a for a in m.group(1).split() if a != "--release"]
    expect("--locked" in args, "the Rust stage's cargo build is not --locked")
    env = dict(os.environ, CARGO_TARGET_DIR=str(STAGED_TARGET_DIR), CARGO_TERM_COLOR="never")
    res = run(["cargo", "check", *args], cwd=cwd, env=env)
    expect(res.returncode == 0, f"cargo check {' '.join(args)} on the staged build context failed (exit {res.returncode}):\n{res.stderr[-4000:]}")


# ---------------------------------------------------------------------------------------------------
# The real binary answers the image's and compose's health checks, and stops within its budget.

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def app_binary() -> Path:
    """The debug binary of this tree (a no-op build after .ci/test's cargo test)."""
    res = run(["cargo", "build", "--locked", "--bin", "gpt-load"], cwd=REPO,
              env=dict(os.environ, CARGO_TARGET_DIR=str(TARGET_DIR), CARGO_TERM_COLOR="never"))
    expect(res.returncode == 0, f"cargo build failed:\n{res.stderr[-4000:]}")
    return TARGET_DIR / "debug" / "gpt-load"


def compose() -> dict:
    return yaml.safe_load((REPO / "docker-compose.yml").read_text())


def compose_healthcheck_argv() -> list[str]:
    test = compose()["services"]["gpt-load"]["healthcheck"]["test"]
    expect(isinstance(test, list) and test[0] == "CMD", "compose healthcheck is not a CMD list")
    return [part.replace("$$", "$") for part in test[1:]]  # undo compose's escaping


def wait_until(deadline_s: float, probe) -> bool:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if probe():
            return True
        time.sleep(0.1)
    return False


def check_healthchecks_against_binary() -> None:
    exe = app_binary()
    port = free_port()
    grace = 10
    with tempfile.TemporaryDirectory(prefix="gpt-load-app-") as app_dir:
        # Like the image: WORKDIR /app with ./data, ENTRYPOINT + CMD = `gpt-load serve`.
        env = {"PATH": os.environ["PATH"], "AUTH_KEY": "deploy-test-" + os.urandom(12).hex(),
               "PORT": str(port), "HOST": "0.0.0.0", "SERVER_GRACEFUL_SHUTDOWN_TIMEOUT": str(grace)}
        proc = subprocess.Popen([str(exe), "serve"], cwd=app_dir, env=env,
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        try:
            def healthy() -> bool:
                try:
                    with urllib.request.urlopen(f"http://127.0.0.1:{port}/health", timeout=1) as r:
                        return r.status == 200 and json.load(r).get("status") == "healthy"
                except OSError:
                    return proc.poll() is not None
            expect(wait_until(60, healthy) and proc.poll() is None, "the server did not become healthy")
            expect(Path(app_dir, "data", "gpt-load.db").exists(), "SQLite was not created in ./data")
            for label, argv in [("Dockerfile HEALTHCHECK", healthcheck_argv()),
                                ("compose healthcheck", compose_healthcheck_argv())]:
                res = run(argv, env=env, timeout=10)
                expect(res.returncode == 0, f"{label} failed against a healthy server: {res.stderr}")
            started = time.monotonic()
            proc.send_signal(signal.SIGTERM)
            proc.wait(timeout=grace + 5)
            took = time.monotonic() - started
            expect(took <= grace, f"SIGTERM to exit took {took:.1f}s, over the {grace}s budget")
            for label, argv in [("Dockerfile HEALTHCHECK", healthcheck_argv()),
                                ("compose healthcheck", compose_healthcheck_argv())]:
                res = run(argv, env=env, timeout=10)
                expect(res.returncode != 0, f"{label} passed with the server stopped")
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()


def check_compose_data_permissions_step() -> None:
    """Runs the compose file's one-shot ownership fix on a scratch ./data: the app's own files change
    owner, the databases' folders do not."""
    if os.geteuid() != 0:
        raise Skip("needs root to chown")
    svc = compose()["services"]["data-permissions"]
    entry = svc["entrypoint"]
    expect(entry[:2] == ["bash", "-c"], "data-permissions entrypoint is not bash -c")
    with tempfile.TemporaryDirectory(prefix="gpt-load-data-") as data:
        d = Path(data)
        for f in ["gpt-load.db", "gpt-load.db-wal", "logs/app.log", "mysql/ibdata1", "postgres/PG_VERSION"]:
            (d / f).parent.mkdir(parents=True, exist_ok=True)
            (d / f).write_text("x")
        for p in [d, *d.rglob("*")]:
            os.chown(p, 0, 0)
        res = run(["bash", "-c", entry[2].replace("/app/data", data)])
        expect(res.returncode == 0, res.stderr)
        owner = lambda p: (d / p).stat().st_uid if p else d.stat().st_uid  # noqa: E731
        for p in ["", "gpt-load.db", "gpt-load.db-wal", "logs", "logs/app.log"]:
            expect(owner(p) == 10001, f"{p or './data'} was not handed to uid 10001")
        for p in ["mysql", "mysql/ibdata1", "postgres/PG_VERSION"]:
            expect(owner(p) == 0, f"{p} changed owner; the database containers own it")


# ---------------------------------------------------------------------------------------------------
# docker-compose.yml

def check_compose_schema() -> None:
    res = run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec",
               str(REPO / "docker-compose.yml")])
    expect(res.returncode == 0, res.stdout + res.stderr)


def check_compose_schema_rejects_typo() -> None:
    text = (REPO / "docker-compose.yml").read_text()
    expect("condition: service_healthy" in text, "no service_healthy condition to corrupt")
    with tempfile.TemporaryDirectory() as tmp:
        bad = Path(tmp, "docker-compose.yml")
        bad.write_text(text.replace("condition: service_healthy", "condition: service_healty", 1))
        res = run([str(VENV_BIN / "check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(bad)])
        expect(res.returncode != 0, "a typo'd depends_on condition passed the compose schema")


def check_compose_semantics() -> None:
    c = compose()
    svc = c["services"]
    app = svc["gpt-load"]
    expect(app["env_file"] == ".env", "gpt-load does not read env_file .env")
    expect("./data:/app/data" in app["volumes"], "./data is not mounted at /app/data")
    expect(app["stop_grace_period"] == "${SERVER_GRACEFUL_SHUTDOWN_TIMEOUT:-10}s",
           "stop_grace_period does not follow SERVER_GRACEFUL_SHUTDOWN_TIMEOUT")
    expect(app["ports"] == ["${PORT:-3001}:${PORT:-3001}"], "ports do not follow PORT")
    expect("profiles" not in app, "gpt-load itself must start without a profile")
    for name in ["mysql", "postgres", "redis"]:
        s = svc[name]
        expect(s.get("profiles") == [name], f"{name} is not behind the '{name}' profile")
        expect("healthcheck" in s, f"{name} has no healthcheck")
        dep = app["depends_on"][name]
        expect(dep == {"condition": "service_healthy", "required": False},
               f"gpt-load's depends_on {name} must be service_healthy with required: false, got {dep}")
    init = app["depends_on"]["data-permissions"]
    expect(init["condition"] == "service_completed_successfully", "gpt-load must wait for data-permissions")
    expect("profiles" not in svc["data-permissions"], "data-permissions must run without a profile")
    # Every ${VAR} the compose file interpolates is documented in .env.example.
    documented = {n for n, _, _ in env_example()}
    used = set(re.findall(r"(?<!\$)\$\{([A-Z_]+)", (REPO / "docker-compose.yml").read_text()))
    expect(used <= documented, f"compose uses {sorted(used - documented)} that .env.example does not list")


# ---------------------------------------------------------------------------------------------------
# Helm chart

def load_values(path: Path) -> dict:
    return yaml.safe_load(path.read_text()) or {}


def readme_cluster_values() -> dict:
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```yaml\n(.*?)```", text, re.S)
    for block in blocks:
        data = yaml.safe_load(block)
        if isinstance(data, dict) and data.get("cluster", {}).get("enabled") is True:
            return data
    raise AssertionError("README has no ```yaml block with cluster.enabled: true")


def value_sets() -> dict[str, dict]:
    sets = {"defaults": {}}
    for p in sorted(VALUES_DIR.glob("*.yaml")):
        sets[p.stem] = load_values(p)
    return sets


def render(values: dict) -> list[dict]:
    import helm_python as helm
    out = helm.Chart.load(str(CHART)).render(values, name="gpt-load", namespace="gpt-load")
    docs = []
    for path, text in sorted(out.items()):
        if path.endswith(".txt"):
            continue
        docs += [d for d in yaml.safe_load_all(text) if d]
    return docs


def render_text(values: dict) -> str:
    return "\n---\n".join(yaml.safe_dump(d, sort_keys=False) for d in render(values))


def check_lint(values: dict) -> None:
    import helm_python as helm
    report = helm.lint(str(CHART), values, strict=True, namespace="gpt-load")
    problems = [m for m in report["messages"] if m["severity"] >= 2] + report.get("errors", [])
    expect(not problems, f"helm lint --strict: {problems}")


def check_kubernetes_validate(values: dict) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp, "rendered.yaml")
        f.write_text(render_text(values))
        for version in KUBE_VERSIONS:
            res = run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", "-k", version, str(f)])
            expect(res.returncode == 0, f"kubernetes {version}: {res.stdout}{res.stderr}")


def check_kubernetes_validate_rejects_typo() -> None:
    docs = render(load_values(VALUES_DIR / "cluster.yaml"))
    dep = next(d for d in docs if d["kind"] == "Deployment")
    port = dep["spec"]["template"]["spec"]["containers"][0]["ports"][0]
    port["containerport"] = port.pop("containerPort")
    with tempfile.TemporaryDirectory() as tmp:
        f = Path(tmp, "bad.yaml")
        f.write_text(yaml.safe_dump(dep))
        res = run([str(VENV_BIN / "kubernetes-validate"), "--strict", "--quiet", str(f)])
        expect(res.returncode != 0, "kubernetes-validate --strict accepted a misspelt field")


def by_kind(docs: list[dict], kind: str) -> list[dict]:
    return [d for d in docs if d["kind"] == kind]


def deployment(docs: list[dict], component: str) -> dict | None:
    for d in by_kind(docs, "Deployment"):
        if d["metadata"]["name"].endswith("-" + component):
            return d
    return None


def env_of(dep: dict) -> dict:
    c = dep["spec"]["template"]["spec"]["containers"][0]
    return {e["name"]: e.get("value") for e in c.get("env", [])}


def check_pod(dep: dict, config: dict) -> None:
    name = dep["metadata"]["name"]
    pod = dep["spec"]["template"]["spec"]
    c = pod["containers"][0]
    for probe in ["readinessProbe", "livenessProbe", "startupProbe"]:
        expect(c[probe]["httpGet"]["path"] == "/health", f"{name}: {probe} is not on /health")
    expect(c["ports"][0]["containerPort"] == int(config["PORT"]), f"{name}: containerPort != PORT")
    expect(c["securityContext"]["readOnlyRootFilesystem"] is True, f"{name}: root fs is writable")
    expect(c["securityContext"]["allowPrivilegeEscalation"] is False, f"{name}: privilege escalation allowed")
    expect(pod["securityContext"]["runAsNonRoot"] is True, f"{name}: runAsNonRoot is off")
    mounts = {m["mountPath"]: m["name"] for m in c["volumeMounts"]}
    vols = {v["name"]: v for v in pod["volumes"]}
    expect("emptyDir" in vols[mounts["/tmp"]], f"{name}: /tmp is not an emptyDir")
    expect("/app/data" in mounts, f"{name}: /app/data is not mounted (read-only root fs)")
    sleep = int(c["lifecycle"]["preStop"]["exec"]["command"][1])
    shutdown = max(10, int(config["SERVER_GRACEFUL_SHUTDOWN_TIMEOUT"]))
    grace = pod["terminationGracePeriodSeconds"]
    expect(grace > sleep + shutdown, f"{name}: terminationGracePeriodSeconds {grace} <= preStop {sleep}s + shutdown {shutdown}s")
    expect("resources" in c and c["resources"].get("requests"), f"{name}: no resource requests")
    refs = [list(e.values())[0]["name"] for e in c["envFrom"]]
    expect(len(refs) == 2, f"{name}: envFrom should name the ConfigMap and the Secret, got {refs}")


def effective_config(values: dict) -> dict:
    base = load_values(CHART / "values.yaml")["config"]
    return {**base, **values.get("config", {})}


def check_rendered_semantics(label: str, values: dict) -> None:
    docs = render(values)
    config = effective_config(values)
    cluster = values.get("cluster", {}).get("enabled", False)
    leader, follower = deployment(docs, "leader"), deployment(docs, "follower")
    expect(leader is not None, "no leader Deployment")
    expect(env_of(leader).get("IS_SLAVE") == "false", "leader pods are not IS_SLAVE=false")
    check_pod(leader, config)
    svc = by_kind(docs, "Service")[0]
    cm = by_kind(docs, "ConfigMap")[0]
    expect(set(cm["data"]) == set(config), f"ConfigMap keys {sorted(cm['data'])}")
    expect("IS_SLAVE" not in cm["data"], "IS_SLAVE must come from the Deployment, not the ConfigMap")
    secrets = by_kind(docs, "Secret")
    if values.get("existingSecret"):
        expect(not secrets, "a Secret was rendered although existingSecret is set")
        ref = leader["spec"]["template"]["spec"]["containers"][0]["envFrom"][1]["secretRef"]["name"]
        expect(ref == values["existingSecret"], f"pods read Secret {ref}, not existingSecret")
    else:
        expect(len(secrets) == 1 and "AUTH_KEY" in secrets[0]["data"], "no Secret with AUTH_KEY")
    if cluster:
        expect(follower is not None, "cluster mode without a follower Deployment")
        expect(env_of(follower).get("IS_SLAVE") == "true", "follower pods are not IS_SLAVE=true")
        check_pod(follower, config)
        want_leaders = values.get("leader", {}).get("replicaCount", 2)
        expect(leader["spec"]["replicas"] == want_leaders, f"leader replicas {leader['spec']['replicas']} != {want_leaders}")
        for dep in (leader, follower):
            pod_labels = dep["spec"]["template"]["metadata"]["labels"]
            expect(all(pod_labels.get(k) == v for k, v in svc["spec"]["selector"].items()),
                   f"the Service does not select {dep['metadata']['name']}'s pods")
        sel = [tuple(sorted(d["spec"]["selector"]["matchLabels"].items())) for d in (leader, follower)]
        expect(sel[0] != sel[1], "the two Deployments have the same selector")
        expect(not by_kind(docs, "PersistentVolumeClaim"), "cluster mode must not create a SQLite volume")
        expect(len(by_kind(docs, "PodDisruptionBudget")) == 2, "cluster mode needs a PDB per Deployment")
        hpa = by_kind(docs, "HorizontalPodAutoscaler")
        autoscale = values.get("follower", {}).get("autoscaling", {}).get("enabled", False)
        if autoscale:
            expect(len(hpa) == 1 and hpa[0]["spec"]["scaleTargetRef"]["name"] == follower["metadata"]["name"],
                   "the HPA does not target the follower Deployment")
            expect("replicas" not in follower["spec"], "follower replicas are set although the HPA owns them")
        else:
            expect(not hpa, "an HPA was rendered with autoscaling off")
            expect(follower["spec"]["replicas"] == values.get("follower", {}).get("replicaCount", 2), "follower replicas")
    else:
        expect(follower is None, "single-node mode rendered followers")
        expect(leader["spec"]["replicas"] == 1, "single-node mode must run exactly one pod")
        expect(leader["spec"]["strategy"]["type"] == "Recreate", "single-node mode must not overlap two pods")
        pvcs = by_kind(docs, "PersistentVolumeClaim")
        expect(len(pvcs) == 1, "single-node mode has no SQLite volume")
        vols = {v["name"]: v for v in leader["spec"]["template"]["spec"]["volumes"]}
        expect(vols["data"]["persistentVolumeClaim"]["claimName"] == pvcs[0]["metadata"]["name"],
               "the pod does not mount the PVC at /app/data")
        expect(not by_kind(docs, "PodDisruptionBudget"), "a one-pod PDB would block node drains")
    if values.get("ingress", {}).get("enabled"):
        ing = by_kind(docs, "Ingress")[0]
        backend = ing["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
        expect(backend["name"] == svc["metadata"]["name"], "the Ingress does not point at the Service")


def expect_render_failure(values: dict, needle: str) -> None:
    import helm_python as helm
    try:
        render(values)
    except helm.HelmError as err:
        expect(needle in str(err), f"rendering failed, but without '{needle}': {err}")
        return
    raise AssertionError(f"rendering succeeded; expected a failure mentioning '{needle}'")


NEGATIVE = {
    "cluster without Redis fails": ({"cluster": {"enabled": True},
                                      "secrets": {"databaseDsn": "postgres://u:p@db:5432/g"}}, "REDIS_DSN"),
    "cluster without any secret fails": ({"cluster": {"enabled": True}}, "REDIS_DSN"),
    "cluster without DATABASE_DSN fails": ({"cluster": {"enabled": True},
                                            "secrets": {"redisDsn": "redis://r:6379/0"}}, "DATABASE_DSN"),
    "cluster on a SQLite path fails": ({"cluster": {"enabled": True},
                                        "secrets": {"redisDsn": "redis://r:6379/0", "databaseDsn": "./data/gpt-load.db"}},
                                       "SQLite cannot be shared"),
    "HPA without cluster mode fails": ({"follower": {"autoscaling": {"enabled": True}}}, "cluster.enabled=true"),
    "HPA without a metric fails": ({"cluster": {"enabled": True}, "secrets": {"redisDsn": "redis://r:6379/0",
                                   "databaseDsn": "postgres://u:p@db:5432/g"},
                                   "follower": {"autoscaling": {"enabled": True, "targetCPUUtilizationPercentage": 0}}},
                                  "above 0"),
    "HPA above its maximum fails": ({"cluster": {"enabled": True}, "existingSecret": "s",
                                    "follower": {"autoscaling": {"enabled": True, "minReplicas": 5, "maxReplicas": 3}}},
                                   "above maxReplicas"),
    "HPA on CPU without a CPU request fails": ({"cluster": {"enabled": True}, "existingSecret": "s",
                                              "follower": {"autoscaling": {"enabled": True},
                                                           "resources": {"requests": {"cpu": None}}}},
                                             "requests.cpu"),
    "misspelt value key fails the schema": ({"clsuter": {"enabled": True}}, "clsuter"),
    "wrong value type fails the schema": ({"leader": {"replicaCount": "two"}}, "replicaCount"),
    "IS_SLAVE in config fails the schema": ({"config": {"IS_SLAVE": True}}, "IS_SLAVE"),
}


def check_yamllint() -> None:
    files = [REPO / "docker-compose.yml", CHART / "Chart.yaml", CHART / "values.yaml", *sorted(VALUES_DIR.glob("*.yaml"))]
    conf = "{extends: default, rules: {line-length: {max: 120}, document-start: disable, truthy: {check-keys: false}}}"
    res = run([str(VENV_BIN / "yamllint"), "--strict", "-d", conf, *map(str, files)])
    expect(res.returncode == 0, res.stdout + res.stderr)


def check_shellcheck() -> None:
    res = run([str(VENV_BIN / "shellcheck"), str(REPO / ".ci" / "test-deploy")])
    expect(res.returncode == 0, res.stdout + res.stderr)


def main() -> int:
    import helm_python as helm
    helm.disable_logging()
    r = Runner()
    r.check(".env.example lists every variable with a comment", check_env_example_complete)
    r.check(".env.example holds no secret", check_env_example_has_no_secret)
    r.check("chart config matches the app's variables and .env.example defaults", check_env_defaults_match_chart)
    r.check(".dockerignore keeps target, node_modules, data, .env out", check_dockerignore)
    r.check("every Dockerfile COPY source exists and is in the context", check_dockerfile_copies_exist)
    r.check("Dockerfile: bases, non-root user, volume, port, entrypoint, healthcheck", check_dockerfile_shape)
    r.check("hadolint Dockerfile", check_hadolint)
    r.check("Dockerfile build stages replayed on the staged context", check_docker_build_replay)
    r.check("image and compose health checks against the real binary", check_healthchecks_against_binary)
    r.check("compose data-permissions step on a scratch ./data", check_compose_data_permissions_step)
    r.check("docker-compose.yml matches the compose-spec schema", check_compose_schema)
    r.check("compose-spec schema rejects a typo'd depends_on condition", check_compose_schema_rejects_typo)
    r.check("docker-compose.yml: profiles, healthchecks, depends_on, grace period", check_compose_semantics)
    r.check("yamllint", check_yamllint)
    r.check("shellcheck .ci/test-deploy", check_shellcheck)
    sets = value_sets()
    r.check("README shows a cluster-mode values file", readme_cluster_values)
    try:
        sets["readme-cluster"] = readme_cluster_values()
    except AssertionError:
        pass  # already counted as a failure just above
    for label, values in sets.items():
        r.check(f"helm lint --strict [{label}]", check_lint, values)
        r.check(f"kubernetes-validate --strict {'/'.join(KUBE_VERSIONS)} [{label}]", check_kubernetes_validate, values)
        r.check(f"rendered manifests [{label}]", check_rendered_semantics, label, values)
    r.check("kubernetes-validate --strict rejects a misspelt field", check_kubernetes_validate_rejects_typo)
    for label, (values, needle) in NEGATIVE.items():
        r.check(f"helm: {label}", expect_render_failure, values, needle)
    return r.summary()


if __name__ == "__main__":
    sys.exit(main())
