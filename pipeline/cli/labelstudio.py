"""The ``planie ls`` commands."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from pipeline.apps.labelstudio.settings import (
    DEFAULT_DATA_DIR,
    DEFAULT_PORT,
    DEFAULT_URL,
    DEFAULT_VENV,
    ENV_PASSWORD,
    ENV_TOKEN,
    ENV_URL,
    ENV_USER,
    LS_VERSION,
    PID_FILE,
)
from pipeline.core.defaults import DEFAULT_SCHEMA_PATH
from pipeline.core.errors import InputError, SetupError, UsageError

if TYPE_CHECKING:
    from pipeline.apps.labelstudio.backend import PredictionService
    from pipeline.apps.labelstudio.learning import Learner


def _schema_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schema", default=str(DEFAULT_SCHEMA_PATH), help="schema YAML (default: %(default)s)")


def _url_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--url",
        default=None,
        help=f"Label Studio URL (default: ${ENV_URL}, else {DEFAULT_URL}); the token comes from ${ENV_TOKEN}",
    )


def cmd_install(args: argparse.Namespace) -> int:
    from pipeline.apps.labelstudio.server import install_server

    started = time.monotonic()
    exe = install_server(args.venv, args.version)
    print(f"label-studio {args.version} at {exe} ({time.monotonic() - started:.0f} s)")
    return 0


def cmd_serve(args: argparse.Namespace) -> int:
    from pipeline.apps.labelstudio.client import LabelStudioError
    from pipeline.apps.labelstudio.server import start_server

    data_dir = Path(args.data_dir).resolve()
    pid_file = data_dir / PID_FILE
    if pid_file.exists() and _pid_alive(pid_file):
        raise LabelStudioError(f"a server started from {data_dir} is still running ({pid_file})")
    started = time.monotonic()
    server = start_server(
        data_dir, args.port, args.venv, host="127.0.0.1", timeout=args.timeout, ml_local=not args.block_local_ml
    )
    print(
        f"Label Studio {server.url} ready in {time.monotonic() - started:.0f} s "
        f"(data {data_dir}, log {server.log_path})"
    )
    print(f"  export {ENV_URL}={server.url}")
    pid_file.write_text(f"{server.process.pid} {server.port}\n", encoding="utf-8")
    if args.detach:
        print(
            f"  running in the background, pid {server.process.pid}; "
            f"stop it with: planie ls stop --data-dir {args.data_dir}"
        )
        return 0
    print("  Ctrl-C stops it")

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, interrupt)  # the server runs in its own session: stop it ourselves
    try:
        code = server.process.wait()
        print(f"label-studio exited with code {code}; see {server.log_path}", file=sys.stderr)
        return code or 1
    except KeyboardInterrupt:
        print("stopping")
        return 0
    finally:
        server.stop()
        pid_file.unlink(missing_ok=True)


def _running(pid: int) -> bool:
    """Alive and not a zombie (a server started by this very process is not reaped by anyone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[-1].split()[0] != "Z"


def _pid_alive(pid_file: Path) -> bool:
    try:
        pid = int(pid_file.read_text(encoding="utf-8").split()[0])
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except (OSError, ValueError, IndexError):
        return False
    return b"label-studio" in cmdline


def cmd_stop(args: argparse.Namespace) -> int:
    pid_file = Path(args.data_dir).resolve() / PID_FILE
    if not pid_file.exists() or not _pid_alive(pid_file):
        pid_file.unlink(missing_ok=True)
        print(f"no running server recorded in {pid_file}")
        return 1
    pid = int(pid_file.read_text(encoding="utf-8").split()[0])
    os.kill(pid, signal.SIGTERM)
    for _ in range(150):
        if not _running(pid):
            break
        time.sleep(0.2)
    pid_file.unlink(missing_ok=True)
    print(f"stopped label-studio (pid {pid})")
    return 0


def cmd_token(args: argparse.Namespace) -> int:
    from pipeline.apps.labelstudio.client import LSAuthError, get_personal_token

    url = (args.url or os.environ.get(ENV_URL) or DEFAULT_URL).rstrip("/")
    user, password = os.environ.get(ENV_USER, ""), os.environ.get(ENV_PASSWORD, "")
    if not user or not password:
        raise LSAuthError(f"set {ENV_USER} and {ENV_PASSWORD} (the admin of {url})")
    token = get_personal_token(url, user, password, rotate=args.rotate)
    print(token)
    print(f"# export {ENV_TOKEN}=<the line above>", file=sys.stderr)
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from pipeline.apps.labelstudio.client import LabelStudioClient
    from pipeline.apps.labelstudio.push import (
        document_specs,
        gold_coverage,
        model_version,
        push_specs,
        select_paragraph_specs,
        task_key,
    )
    from pipeline.core.documents import DocumentError, read_document
    from pipeline.core.inputs import collect_documents
    from pipeline.core.schema import load_schema
    from pipeline.extractors.extract import load_extractor

    paths = collect_documents(args.docs)
    if not paths:
        raise InputError("no documents found in the inputs")
    documents, failed = [], 0
    for path in paths:
        try:
            documents.append(read_document(path))
        except DocumentError as exc:
            print(f"error: {exc}", file=sys.stderr)
            failed += 1
    schema = load_schema(args.schema)
    client = LabelStudioClient(args.url)
    client.whoami()  # fail on a bad URL or token before loading a model
    extractor = load_extractor(args.model) if (args.select or not args.no_predictions) else None
    version = model_version(extractor) if extractor is not None else ""
    if args.select:
        project = client.find_project(args.project)
        exclude = {task_key(t.get("data") or {}) for t in client.list_tasks(project["id"])} if project else set()
        covered = gold_coverage(args.gold or [])
        specs = select_paragraph_specs(documents, extractor, args.select, exclude, not args.no_predictions, covered)
        if not specs:
            print("no unlabeled paragraph left to push (all in the project or covered by --gold)")
            return 0
    else:
        specs = document_specs(documents, None if args.no_predictions else extractor)
    report = push_specs(client, args.project, specs, version, schema, args.backend_url)
    print(report.summary())
    print(f"open {client.url}/projects/{report.project_id}/data")
    return 1 if (report.conflicts or failed) else 0


def cmd_pull(args: argparse.Namespace) -> int:
    from pipeline.apps.labelstudio.client import LabelStudioClient
    from pipeline.apps.labelstudio.pull import pull
    from pipeline.core.documents import documents_index
    from pipeline.core.schema import load_schema

    schema = load_schema(args.schema)
    documents = documents_index(args.docs or [])
    client = LabelStudioClient(args.url)
    report = pull(client, args.project, args.out, schema, documents, args.all_annotators, args.force)
    print(report.summary())
    return 0 if report.ok else 1


def _learning_backend(args: argparse.Namespace) -> tuple[PredictionService, Learner]:
    """The served model from WORK/current (seeded from --model) and the Learner that replaces it."""
    from pipeline.apps.labelstudio.backend import PredictionService
    from pipeline.apps.labelstudio.client import LabelStudioClient
    from pipeline.apps.labelstudio.learning import LearnConfig, Learner, ModelStore
    from pipeline.core.documents import documents_index
    from pipeline.extractors.extract import check_model_arg, load_extractor

    if not args.eval:
        raise UsageError("--work-dir needs --eval GOLD (files or folders): the fixed evaluation set of each round")
    store = ModelStore(Path(args.work_dir))
    if store.current is None:
        if args.model == "rules":
            raise UsageError("a learning backend fine-tunes a trained model: give --model DIR")
        check_model_arg(args.model)
        store.seed(args.model)
    service = PredictionService(load_extractor(str(store.current_dir)))
    cfg = LearnConfig(
        Path(args.work_dir),
        tuple(args.eval),
        documents_index(args.docs or []),
        args.schema,
        args.epochs,
        args.max_steps,
    )
    learner = Learner(store, LabelStudioClient(args.url), cfg, lambda d: service.swap(load_extractor(str(d))))
    print(
        f"learning: serving {store.current} of {store.versions_dir}; a train request fine-tunes it on the project's "
        f"annotations, scores it on {len(learner.gold)} gold document(s), promotes it if not worse; "
        f"reports in {learner.runs_dir}/NNNN/report.json"
    )
    return service, learner


def cmd_backend(args: argparse.Namespace) -> int:
    from pipeline.apps.labelstudio.backend import PredictionService, make_backend
    from pipeline.extractors.extract import load_extractor

    learner = None
    if args.work_dir:
        service, learner = _learning_backend(args)
    else:
        service = PredictionService(load_extractor(args.model))
    try:
        server = make_backend(service, args.host, args.port, learner)
    except OSError as exc:
        raise SetupError(f"cannot listen on {args.host}:{args.port}: {exc}") from exc
    print(f"ML backend for {service.model_version} at http://{args.host}:{args.port} (Ctrl-C stops it)")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


def add_ls_commands(subparsers: argparse._SubParsersAction) -> argparse.ArgumentParser:
    """Register ``planie ls ...`` (install, serve, stop, token, push, pull, backend)."""
    ls = subparsers.add_parser(
        "ls",
        help="the Label Studio round trip: server, token, push pre-annotations, pull gold, ML backend",
        description=(
            "Annotate in Label Studio: `ls install` once, `ls serve`, `ls token`, then `ls push` documents with "
            f"the model's pre-annotations and `ls pull` the corrected annotations. Clients read the server URL "
            f"from ${ENV_URL} (default {DEFAULT_URL}) and the personal access token from ${ENV_TOKEN}."
        ),
    )
    sub = ls.add_subparsers(dest="ls_command", required=True, metavar="LS_COMMAND")

    p = sub.add_parser(
        "install",
        help=f"install label-studio {LS_VERSION} into its own venv (~1 GB, a few minutes)",
        description="python3 -m venv VENV && VENV/bin/pip install label-studio==VERSION (kept if already there).",
    )
    p.add_argument("--venv", default=str(DEFAULT_VENV), help="server venv (default: %(default)s)")
    p.add_argument("--version", default=LS_VERSION, help="label-studio version (default: %(default)s)")
    p.set_defaults(func=cmd_install)

    p = sub.add_parser(
        "serve",
        help="start label-studio on 127.0.0.1:PORT and wait until it is healthy",
        description=(
            f"Start label-studio bound to 127.0.0.1 only, data in --data-dir (SQLite). The first start of a data "
            f"dir migrates the database (~40 s) and creates the admin from ${ENV_USER} (an e-mail) and "
            f"${ENV_PASSWORD}. Sign-up without an invitation link, version checks, analytics and Sentry are off; "
            "ML backends on localhost are allowed. A busy port is an error."
        ),
    )
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port on 127.0.0.1 (default: %(default)s)")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="server data folder (default: %(default)s)")
    p.add_argument("--venv", default=str(DEFAULT_VENV), help="server venv (default: %(default)s)")
    p.add_argument("--timeout", type=float, default=300, help="seconds to wait for /health (default: %(default)s)")
    p.add_argument("--detach", action="store_true", help="leave it running in the background (stop: planie ls stop)")
    p.add_argument("--block-local-ml", action="store_true", help="forbid ML backends on local addresses")
    p.set_defaults(func=cmd_serve)

    p = sub.add_parser("stop", help="stop a server started with `ls serve --detach`")
    p.add_argument("--data-dir", default=str(DEFAULT_DATA_DIR), help="its data folder (default: %(default)s)")
    p.set_defaults(func=cmd_stop)

    p = sub.add_parser(
        "token",
        help="print a personal access token for the admin (for $LABEL_STUDIO_API_KEY)",
        description=(
            f"Log in as ${ENV_USER} / ${ENV_PASSWORD} and create the user's personal access token; prints it "
            f"alone on stdout: export {ENV_TOKEN}=$(planie ls token). Label Studio keeps one token per user."
        ),
    )
    _url_arg(p)
    p.add_argument("--rotate", action="store_true", help="revoke the user's existing token and create a new one")
    p.set_defaults(func=cmd_token)

    p = sub.add_parser(
        "push",
        help="import documents (or the most informative paragraphs) as tasks with the model's predictions",
        description=(
            "Create or update the project (labeling config generated from the schema) and import each document as "
            "a task: data.text = the whole text, data.doc_id = the file stem, so offsets are file offsets; the "
            "model's spans (with scores) and relations come as predictions (pre-annotations). Idempotent: a task "
            "with the same doc_id (and offset) is not duplicated. --select N pushes instead the N paragraphs with "
            "the highest summed token entropy under the model, as tasks carrying doc_id and offset."
        ),
    )
    p.add_argument("docs", nargs="+", metavar="DOCS", help=".txt documents: files, folders (recursive) or globs")
    p.add_argument("--project", required=True, help="project title (created if missing)")
    p.add_argument("--model", default="rules", help="'rules' or a trained model folder (default: %(default)s)")
    p.add_argument("--select", type=int, metavar="N", help="push only the N most uncertain unlabeled paragraphs")
    p.add_argument(
        "--gold",
        nargs="*",
        metavar="PATH",
        help="with --select: skip what these exports (files or folders, e.g. annotations/) already cover",
    )
    p.add_argument("--no-predictions", action="store_true", help="tasks without pre-annotations")
    p.add_argument("--backend-url", help="connect this ML backend (planie ls backend) to the project")
    _url_arg(p)
    _schema_arg(p)
    p.set_defaults(func=cmd_push)

    p = sub.add_parser(
        "pull",
        help="export finished annotations to one validated Label Studio JSON file per document",
        description=(
            "Export the project's finished annotations (the latest per task), map paragraph tasks back to "
            "document offsets, validate them against the schema (and the source files with --docs) and write "
            "OUT/DOC_ID.json atomically. An existing file with a different annotation is reported and kept "
            "unless --force. Exit 1 on any conflict or problem; the other documents are still written."
        ),
    )
    p.add_argument("--project", required=True, help="project title")
    p.add_argument("--out", required=True, help="output folder, e.g. annotations/")
    p.add_argument("--docs", nargs="*", help="folders of the source .txt files (checks text; needed for paragraphs)")
    p.add_argument("--all-annotators", action="store_true", help="one file per annotator: OUT/ANNOTATOR/DOC_ID.json")
    p.add_argument("--force", action="store_true", help="overwrite existing files that differ")
    _url_arg(p)
    _schema_arg(p)
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser(
        "backend",
        help="serve the model's predictions as a Label Studio ML backend; with --work-dir it also learns",
        description=(
            'GET /health, POST /setup, POST /predict -> {"results": [...]}; connect it with '
            "`planie ls push ... --backend-url http://127.0.0.1:PORT`. With --work-dir and --eval, Label Studio's "
            'train requests (the model card\'s "Start Training", or every N submitted annotations when the project '
            "asks for it) start a training round in the background: pull the project's validated annotations, "
            "fine-tune the served version for a few epochs on the CPU, score strict entity micro-F1 on the --eval "
            "gold, promote the new version if not worse (WORK/versions/, WORK/current) and serve it; every round "
            "leaves WORK/runs/NNNN/report.json. One round at a time: a request during a round answers 'busy'. "
            f"The backend pulls with ${ENV_TOKEN} from ${ENV_URL} (or --url)."
        ),
    )
    p.add_argument("--model", default="rules", help="'rules' or a trained model folder (default: %(default)s)")
    p.add_argument("--port", type=int, default=9090, help="port (default: %(default)s)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default: %(default)s)")
    p.add_argument("--work-dir", help="learn: model versions, the current pointer and run reports live here")
    p.add_argument("--eval", nargs="*", metavar="GOLD", help="the fixed evaluation set: gold exports (files, folders)")
    p.add_argument("--docs", nargs="*", help="folders of the source .txt files (paragraph tasks map back to them)")
    p.add_argument("--epochs", type=float, default=3, help="epochs per training round (default: %(default)s)")
    p.add_argument("--max-steps", type=int, default=-1, help="cap on optimizer steps per round (default: none)")
    _url_arg(p)
    _schema_arg(p)
    p.set_defaults(func=cmd_backend)
    return ls
