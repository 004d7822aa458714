"""`papers`: the command line for users without the Dagster UI.

    papers run [--captures DIR] [--captured-at TIME] [--full-refresh] [--allow-removals]
                                                       run the pipeline from the captures on, through Dagster
    papers scrape --from DATE [--to DATE] [--refresh]  fetch the Hub's daily papers, a partition a day
    papers scrape --search QUERY... [--page URL...]    fetch search results and papers pages
    papers parse FILE...                               print each file's listings and rejects as JSON lines
    papers publish [--dry-run] [--allow-removals]      release the audited tables (Hub repo: PAPERS_HUB_REPO)
    papers query SQL                                   run read-only SQL against the DuckDB catalog
    papers ui                                          open the Dagster UI on the same instance
"""

import atexit

_EXIT_STATUS: list[int] = []  # set by `entry`, the console script


def _leave() -> None:
    """After Python has waited for the threads and run the other exit handlers: flush the output
    and end the process, without the interpreter's teardown, whose collections searched every
    object the command had made (Dagster's and Great Expectations' among them) for cycles: about
    1 s of every command (`perf` found it in `gc_collect_main`; a run with nothing new took 3.4-3.7
    s, 2.6-2.7 s without). The system frees the memory; the files the pipeline writes are closed
    and flushed by then. (Freezing the objects instead, so that the collections pass them by, left
    DuckDB's to be reported as leaked.) Only the console script leaves so; `main` called in a
    process of another program does not."""
    if not _EXIT_STATUS:
        return
    status = _EXIT_STATUS[0]
    try:
        sys.stdout.flush()
    except OSError as err:  # as Python does: the output is incomplete, and the status says so
        print(f"papers: the output could not be written: {err.strerror or err}", file=sys.stderr)
        status = status or 120
    with contextlib.suppress(OSError):
        sys.stderr.flush()
    os._exit(status)


# Registered before the other imports, so that it runs after every other exit handler (they run
# last registered first).
atexit.register(_leave)

import argparse
import contextlib
import datetime as dt
import gc
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from pipeline.paths import ENV_VAR, SAMPLE_CAPTURES, DataDir, write_error

WORKSPACE = Path(__file__).resolve().parent.parent / "workspace.yaml"
FULL_GC_AFTER = 100  # collections of the middle generation before a full one, in a command (`entry`)


def _instance(data_dir: DataDir):
    """The Dagster instance of `_dagster_home`, opened under a file lock: two `papers` commands
    starting at once on a new data directory would otherwise both create its storage."""
    import fcntl

    import dagster as dg

    home = _dagster_home(data_dir)
    with open(home / ".instance.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        instance = dg.DagsterInstance.get()
        _fail_dead_runs(instance)
        return instance


PID_TAG, HOST_TAG = "papers/pid", "papers/host"


def _run_tags() -> dict[str, str]:
    """Tags that let a later command tell whether the process of a run is still alive."""
    return {PID_TAG: str(os.getpid()), HOST_TAG: socket.gethostname()}


def _fail_dead_runs(instance) -> None:
    """Mark failed the runs of `papers` commands whose process died (killed, or the machine went
    down) while the run was STARTED: nothing else ever would, and they would stay STARTED."""
    import dagster as dg

    host = socket.gethostname()
    for run in instance.get_runs(filters=dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED,
                                                                 dg.DagsterRunStatus.STARTING])):
        pid = run.tags.get(PID_TAG)
        if pid is None or run.tags.get(HOST_TAG) != host or _alive(int(pid)):
            continue
        instance.report_run_failed(run, f"the process of this run (pid {pid}) died before the run finished; "
                                        "the next run recovers the data directory")
        # Its claim on a pool's slot (say `hf_api`) would otherwise block every later run of the pool.
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# One op of the `hf_api` pool at a time across runs: a backfill cannot flood the site. The daemon of
# `dagster dev` frees the pool slots a run that died still held, a minute after.
DAGSTER_SETTINGS = ("telemetry:\n  enabled: false\nconcurrency:\n  pools:\n    default_limit: 1\n"
                    "run_monitoring:\n  enabled: true\n  free_slots_after_run_end_seconds: 60\n")


def _dagster_home(data_dir: DataDir) -> Path:
    """The Dagster instance lives in the data directory unless DAGSTER_HOME says otherwise, so that
    `papers run` and `papers ui` (or `dagster dev` with the same DAGSTER_HOME) share their runs."""
    home = Path(os.environ.setdefault("DAGSTER_HOME", str(data_dir.root / "dagster")))
    home.mkdir(parents=True, exist_ok=True)
    settings = home / "dagster.yaml"
    if not settings.exists():
        settings.write_text(DAGSTER_SETTINGS)
    return home


def cmd_run(args: argparse.Namespace) -> int:
    from assets.definitions import defs

    data_dir = DataDir.resolve()
    home = _dagster_home(data_dir)
    config = {"captures_dir": str(args.captures or SAMPLE_CAPTURES)}
    if args.captured_at:
        config["captured_at"] = args.captured_at.isoformat()
    refresh = {"config": {"full_refresh": args.full_refresh}}
    run_config = {
        "ops": {"captures": {"config": config}, "parse_captures": refresh, "resolve_papers": refresh,
                "release": {"config": {"allow_removals": args.allow_removals}}},
        "loggers": {"terminal": {}},
    }
    print(f"data directory: {data_dir.root}\nDagster instance: {home}", file=sys.stderr)
    with _instance(data_dir) as instance:
        result = defs.resolve_job_def("papers_job").execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False, tags=_run_tags())
    checks = result.get_asset_check_evaluations()
    for check in checks:
        md = check.metadata
        state = "passed" if check.passed else f"FAILED ({check.severity.value})"
        print(f"  check {check.check_name:<18} {state}")
        if not check.passed:
            print(f"    failed expectations: {json.dumps(md['failed_expectations'].value)}")
            if "data_docs" in md:
                print(f"    data docs: {md['data_docs'].value}")
    blocked = [c.check_name for c in checks if not c.passed and c.severity.value == "ERROR"]
    if blocked:
        print(f"run {result.run_id}: blocking check {', '.join(blocked)} failed: its tables were not committed, "
              "nothing downstream of it ran and no release was made", file=sys.stderr)
        return 1
    if _report_failure(result, f"run {result.run_id}"):
        return 1
    print(f"run {result.run_id} succeeded")
    for event in result.get_asset_materialization_events():
        mat = event.materialization
        md = mat.metadata
        rows = md.get("dagster/row_count")
        facts = [f"{rows.value} rows" if rows else None]
        if "views" in md:
            facts.append(f"{len(md['views'].value)} views")
        if "version" in md:
            facts.append(f"version {md['version'].value}" + ("" if md["published"].value else " (unchanged)"))
        print(f"  {mat.asset_key.to_user_string():<10} " + ", ".join(f for f in facts if f))
    return 0


def cmd_scrape(args: argparse.Namespace) -> int:
    """Fetch through Dagster (recorded in the instance the UI shows); `papers run` then processes."""
    from assets.definitions import defs
    from assets.sources import RECAPTURE_DAYS

    data_dir = DataDir.resolve()
    days = []
    if args.date_from:
        start, end = args.date_from, args.date_to or args.date_from
        days = [start + dt.timedelta(days=i) for i in range((end - start).days + 1)]
    failed = 0
    logging = {"loggers": {"terminal": {}}}
    # Runs of up to RECAPTURE_DAYS days, as a backfill in the UI makes them (`daily_papers`' policy)
    chunks = [days[i:i + RECAPTURE_DAYS] for i in range(0, len(days), RECAPTURE_DAYS)]
    with _instance(data_dir) as instance:
        for n, chunk in enumerate(chunks, 1):
            what = f"daily papers of {chunk[0]}" + (f"..{chunk[-1]}" if len(chunk) > 1 else "")
            print(f"[{n}/{len(chunks)}] {what}", file=sys.stderr)
            result = defs.resolve_job_def("daily_scrape_job").execute_in_process(
                instance=instance, raise_on_error=False, run_config={
                    **logging, "ops": {"daily_papers": {"config": {"refresh": args.refresh}}}},
                tags={**_run_tags(), "dagster/asset_partition_range_start": chunk[0].isoformat(),
                      "dagster/asset_partition_range_end": chunk[-1].isoformat()})
            failed += _report_failure(result, what)
        if args.search or args.page:
            result = defs.resolve_job_def("search_job").execute_in_process(
                instance=instance, raise_on_error=False, tags=_run_tags(), run_config={
                    **logging, "ops": {"searched_papers": {"config": {"queries": args.search or [],
                                                                      "page_urls": args.page or []}}}})
            failed += _report_failure(result, "search")
    if failed:
        print(f"papers scrape: {failed} run(s) failed", file=sys.stderr)
        return 1
    print("fetched; `papers run` parses, validates, resolves and releases them", file=sys.stderr)
    return 0


def _report_failure(result, what: str) -> bool:
    """Print why a run failed, in one line a failed step; True when it failed."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            while error.cause is not None:  # Dagster's wrapping errors first, the user's reason last
                error = error.cause
            message = error.message.strip().splitlines()[0]
            # "module.Class: text" -> "text": the class adds nothing for the user
            print(f"papers: {what}: {message.split(f'{error.cls_name}: ', 1)[-1]}", file=sys.stderr)
    return not result.success


def cmd_publish(args: argparse.Namespace) -> int:
    """Materialize the release asset alone; with --dry-run, print what it would do and write nothing."""
    if not args.dry_run:
        return _run_assets("release_job", "publish",
                           {"ops": {"release": {"config": {"allow_removals": args.allow_removals}}}})
    from assets.resources import ReleaseTargetResource
    from pipeline import publish, release, stages, store

    data_dir = DataDir.resolve()
    try:
        target = ReleaseTargetResource().get(data_dir)
        done = stages.release_tables(data_dir, target, dt.datetime.now(dt.timezone.utc), args.allow_removals,
                                     dry_run=True)
    except (store.StoreError, release.ReleaseRefused, publish.PublishError, publish.PublishConflict) as err:
        print(f"papers publish: {err}", file=sys.stderr)
        return 1
    current, prepared = done.current, done.prepared
    if prepared is None:
        print(f"{target.location}: data unchanged since {current.manifest.get('version')}: nothing to publish")
        return 0
    uploads, deletes = done.plan
    base = f"on top of {current.manifest.get('version')} ({current.head[:12]})" if current.head else "as its first version"
    print(f"{target.location}: would publish {prepared.version} {base}")
    for path, data in sorted(uploads.items()):
        print(f"  upload {path} ({len(data):,} bytes)")
    for path in deletes:
        print(f"  delete {path}")
    print(f"\n{prepared.changelog_section}")
    return 0


def _run_assets(job: str, what: str, run_config: dict) -> int:
    from assets.definitions import defs

    with _instance(DataDir.resolve()) as instance:
        result = defs.resolve_job_def(job).execute_in_process(
            instance=instance, raise_on_error=False, tags=_run_tags(),
            run_config={"loggers": {"terminal": {}}, **run_config})
    if _report_failure(result, what):
        return 1
    for event in result.get_asset_materialization_events():
        md = event.materialization.metadata
        print(f"{what}: version {md['version'].value}" + ("" if md["published"].value else " (unchanged)"))
    return 0


def cmd_parse(args: argparse.Namespace) -> int:
    from pipeline import parse
    from pipeline.sources.folder import capture_time

    status = 0
    for name in args.files:
        path = Path(name)
        if not path.is_file():
            what = "is a folder: name its files (e.g. folder/*)" if path.is_dir() else "no such file"
            print(f"papers parse: {name}: {what}", file=sys.stderr)
            status = 2
            continue
        data = path.read_bytes()
        fmt = parse.detect(data)
        captured_at, basis = capture_time(fmt, data, path, None)
        capture = {"capture_id": hashlib.sha256(data).hexdigest(), "format": fmt,
                   "source": parse.source_of(fmt), "origin": name, "captured_at": captured_at}
        listings, rejects = parse.to_frames(*parse.parse_capture(capture, data))
        for row in listings.iter_rows(named=True):
            print(json.dumps({"file": name, "kind": "listing", **row}, default=_json_default, ensure_ascii=False))
        for row in rejects.iter_rows(named=True):
            print(json.dumps({"file": name, "kind": "reject", **row}, default=_json_default, ensure_ascii=False))
    return status


def _json_default(value):
    if isinstance(value, dt.date):  # datetimes too
        return value.isoformat()
    raise TypeError(f"cannot encode {type(value).__name__}")


def _sql_error(err: Exception) -> str:
    """DuckDB's message in one line: it spans lines (candidates, the query with a caret under it)."""
    return " ".join(line.strip() for line in str(err).splitlines() if line.strip().strip("^"))


def cmd_query(args: argparse.Namespace) -> int:
    import duckdb

    from pipeline import store

    data_dir = DataDir.resolve()
    try:
        statements = duckdb.extract_statements(args.sql)
    except duckdb.Error as err:
        print(f"papers query: {_sql_error(err)}", file=sys.stderr)
        return 2
    if not statements:
        print("papers query: the query is empty: give one SQL query, e.g. \"SELECT count(*) FROM papers\"",
              file=sys.stderr)
        return 2
    if not data_dir.catalog.exists():
        print(f"papers query: no catalog at {data_dir.catalog}; run `papers run` first", file=sys.stderr)
        return 2
    with store.connect_catalog(data_dir) as con:
        try:
            store.check_query(args.sql)
            relation = con.sql(args.sql)
        except (duckdb.Error, PermissionError) as err:
            print(f"papers query: {_sql_error(err)}", file=sys.stderr)
            return 1
        if relation is None:
            return 0
        relation.show(max_width=200, max_rows=args.max_rows)
    return 0


STOP_GRACE_SECONDS = 20


def cmd_ui(args: argparse.Namespace) -> int:
    home = _dagster_home(DataDir.resolve())
    print(f"Dagster instance: {home}", file=sys.stderr)
    # dagster dev starts a webserver, a daemon and code servers: in a session of their own, so that
    # Ctrl-C or SIGTERM here stops every one of them (and a Ctrl-C reaches them only through here)
    ui = subprocess.Popen([sys.executable, "-m", "dagster", "dev", "-w", str(WORKSPACE), "-p", str(args.port)],
                          start_new_session=True)
    stopping = []

    def stop(signum, _frame):
        stopping.append(signum)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(ui.pid, signal.SIGTERM)

    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, stop)
    code = None
    while code is None and not stopping:
        with contextlib.suppress(subprocess.TimeoutExpired):
            code = ui.wait(timeout=1)
    if stopping:
        # dagster dev may take its time, or hang, and some of its processes outlive it: wait for the
        # session to empty, then kill whatever is left.
        deadline = time.monotonic() + STOP_GRACE_SECONDS
        while (left := _session_members(ui.pid)) and time.monotonic() < deadline:
            ui.poll()  # reaps dagster dev when it ends
            time.sleep(0.2)
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):  # where there is no /proc, the group is what is known
            os.killpg(ui.pid, signal.SIGKILL)
        ui.wait()
        print("papers ui: stopped", file=sys.stderr)
        return 128 + stopping[0]
    return code


def _session_members(sid: int) -> list[int]:
    """The live processes of session `sid`, from /proc (zombies are dead already)."""
    members = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError):
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) == sid and fields[0] != "Z":
                members.append(int(stat.parent.name))
    return members


def _date(value: str) -> dt.date:
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not a date (YYYY-MM-DD)") from None


def _time(value: str) -> dt.datetime:
    try:
        parsed = dt.datetime.fromisoformat(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO-8601 time (e.g. 2026-05-07T09:00:00Z)") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.timezone.utc)


def _folder(value: str) -> Path:
    path = Path(value).expanduser().resolve()
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{value} does not exist or is not a folder")
    return path


def _positive(value: str) -> int:
    if not value.isdigit() or int(value) < 1:
        raise argparse.ArgumentTypeError(f"{value!r} is not a positive whole number")
    return int(value)


def _check(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """What argparse cannot check alone, checked before anything starts."""
    if args.command == "scrape":
        from assets.sources import daily_partitions

        first = daily_partitions.start.date()
        last = dt.datetime.now(dt.timezone.utc).date() + dt.timedelta(days=1)
        if args.date_to and not args.date_from:
            parser.error("--to needs --from")
        if not (args.date_from or args.search or args.page):
            parser.error("say what to fetch: --from DATE [--to DATE], --search QUERY... or --page URL...")
        if args.date_from and args.date_to and args.date_to < args.date_from:
            parser.error(f"--to {args.date_to} is before --from {args.date_from}: give the earlier day first")
        for url in args.page or []:
            if "://" in url and not url.startswith(("http://", "https://")):
                parser.error(f"--page {url}: give an http(s) URL or a path on the Hub (papers/date/2026-11-02)")
        for day in filter(None, (args.date_from, args.date_to)):
            if not first <= day <= last:
                parser.error(f"{day} is outside the days of Daily Papers that can be fetched ({first} to {last})")
    if args.command in ("run", "publish") and os.environ.get("PAPERS_HUB_REPO"):
        from pipeline import publish

        try:
            publish.check_repo_id(os.environ["PAPERS_HUB_REPO"])
        except publish.PublishError as err:
            parser.exit(2, f"papers {args.command}: {err}\n")
    if args.command in ("run", "scrape", "ui") or (args.command == "publish" and not args.dry_run):
        root = DataDir.resolve().root
        try:
            root.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=root):
                pass
        except OSError as err:
            parser.exit(2, f"papers: cannot write to the data directory {root} ({err.strerror}): make it "
                           f"writable, or set {ENV_VAR} to a folder that is\n")


def _one_line(err: BaseException) -> str:
    """What went wrong, and what to do, for an error no command caught."""
    import errno

    if isinstance(err, OSError) and (message := write_error(err)):
        return message
    if _disk_full(err):
        return write_error(OSError(errno.ENOSPC, "full", str(DataDir.resolve().root)))
    text = str(err).strip().splitlines()[0] if str(err).strip() else ""
    if "sqlite3.OperationalError" in text:
        return (f"the Dagster instance in {os.environ.get('DAGSTER_HOME')} could not be written "
                f"({text.split(') ', 1)[-1]}): check that disk, then run again")
    return f"{type(err).__name__}: {text}" if text else type(err).__name__


FULL_BELOW = 16 * 1024 * 1024  # free bytes under which a write error is taken for a full disk


def _disk_full(err: BaseException) -> bool:
    """The errors a full disk gives through SQLite (Dagster's instance), which says "disk I/O error"
    rather than "full" when its journal cannot be written."""
    import shutil

    text = str(err)
    if "No space left on device" in text or "database or disk is full" in text:
        return True
    if "disk I/O error" not in text:
        return False
    folders = [DataDir.resolve().root, Path(os.environ.get("DAGSTER_HOME") or DataDir.resolve().root)]
    return any(shutil.disk_usage(f).free < FULL_BELOW for f in folders if f.exists())


class _OneLineStderr:
    """Dagster writes a failed event-log write to stderr itself, with the SQL and its parameters
    (a full disk gives several); only its first line is kept, the command's own line says the rest."""

    PREFIX = "Exception while writing logger call to event log"

    def __init__(self, stream):
        self._stream = stream

    def write(self, text: str) -> int:
        if text.startswith(self.PREFIX):
            text = text.split("\n", 1)[0] + "\n"
        return self._stream.write(text)

    def __getattr__(self, name):
        return getattr(self._stream, name)


class Parser(argparse.ArgumentParser):
    def error(self, message: str):
        """One line, not the usage too: the message and where to read more."""
        self.exit(2, f"{self.prog}: {message} (see `{self.prog} --help`)\n")


def main(argv: list[str] | None = None) -> int:
    parser = Parser(prog="papers", description=__doc__.split("\n\n")[0],
                                     epilog=f"Everything is written under ./data unless {ENV_VAR} names another directory.")
    parser.add_argument("--debug", action="store_true", help="show the traceback of an unexpected error")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run the pipeline from the captures on (no network), through Dagster")
    run.add_argument("--captures", metavar="DIR", type=_folder,
                     help="import this folder's captures (default: the bundled samples); captures imported "
                          "before, and fetched pages, stay")
    run.add_argument("--captured-at", metavar="TIME", type=_time,
                     help="ISO-8601 capture time for every file imported (e.g. 2026-05-07T09:00:00Z)")
    run.add_argument("--full-refresh", action="store_true",
                     help="parse every capture and resolve every listing again (after a parser or suite change, "
                          "or to rebuild lost tables from the raw store)")
    run.add_argument("--allow-removals", action="store_true",
                     help="let the release remove more than 1%% of the papers the previous version had")
    run.set_defaults(func=cmd_run)
    scrape = sub.add_parser("scrape", help="fetch the Hub's daily papers, search results or pages")
    scrape.add_argument("--from", dest="date_from", metavar="DATE", type=_date,
                        help="first day (YYYY-MM-DD) of daily papers")
    scrape.add_argument("--to", dest="date_to", metavar="DATE", type=_date, help="last day (default: the first)")
    scrape.add_argument("--refresh", action="store_true", help="fetch pages captured before again")
    scrape.add_argument("--search", nargs="+", metavar="QUERY", help="paper searches to run (the search API)")
    scrape.add_argument("--page", nargs="+", metavar="URL", help="papers-page URLs (HTML)")
    scrape.set_defaults(func=cmd_scrape)
    parse_cmd = sub.add_parser("parse", help="print the listings and rejects of capture files, writing nothing")
    parse_cmd.add_argument("files", nargs="+", metavar="FILE", help="saved pages: text, JSON or HTML")
    parse_cmd.set_defaults(func=cmd_parse)
    pub = sub.add_parser("publish", help="publish the audited tables as a new version, if they changed")
    pub.add_argument("--dry-run", action="store_true",
                     help="print the files it would upload and the changelog, writing nothing anywhere")
    pub.add_argument("--allow-removals", action="store_true",
                     help="publish even if the version removes more than 1%% of the papers the previous one had")
    pub.set_defaults(func=cmd_publish)
    query = sub.add_parser("query", help="run read-only SQL against the DuckDB catalog")
    query.add_argument("sql", help='one query, e.g. "SELECT title, upvotes FROM papers ORDER BY upvotes DESC"')
    query.add_argument("--max-rows", type=_positive, default=40, help="rows to show at most (default 40)")
    query.set_defaults(func=cmd_query)
    ui = sub.add_parser("ui", help="start the Dagster UI on the same instance as `papers run`")
    ui.add_argument("--port", type=_positive, default=3000, help="the port it listens on (default 3000)")
    ui.set_defaults(func=cmd_ui)
    args = parser.parse_args(argv)
    _check(parser, args)
    if not args.debug:
        sys.stderr = _OneLineStderr(sys.stderr)
    try:
        return args.func(args)
    except BrokenPipeError:  # `papers parse … | head`: the reader has what it wanted
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"papers {args.command}: interrupted; the next run recovers the data directory", file=sys.stderr)
        return 130
    except Exception as err:
        if args.debug:
            raise
        print(f"papers {args.command}: {_one_line(err)} (--debug shows the traceback)", file=sys.stderr)
        return 1


def entry() -> None:
    """The `papers` command: `main`, then exit with its status, leaving from the last exit handler
    (`_leave`).

    Python's collector goes through every object (a full collection) after ten collections of the
    middle generation, when the objects that have lived long have grown by a quarter since the last
    one. Dagster's and Great Expectations' modules alone make about 400,000 objects: full
    collections took 1.4 s of a fresh run of the workload, 0.9 s of a day's and 0.35 s of a run with
    nothing new (by `gc.callbacks`; 1.9, 1.1 and 0.55 s in all collections). After FULL_GC_AFTER
    instead, each made one full collection or none, and all collections took 0.6, 0.6 and 0.11 s."""
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, FULL_GC_AFTER)
    _EXIT_STATUS.append(main() or 0)
    sys.exit(_EXIT_STATUS[0])


if __name__ == "__main__":
    entry()
