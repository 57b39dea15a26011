"""Command line of the project: ``python -m bot {check,train,run,shell,...}``.

* ``check``  validate the knowledge files and print a summary (exit 1 with the file and field on error);
* ``train``  train the model if its inputs changed (content-hash key, see bot.ops.model_store);
* ``run``    train if needed, start the agent desk, the action server and the Rasa server on loopback, print
  where to talk to them, and stop all three on Ctrl-C;
* ``shell``  train if needed, start the action server and chat in the terminal (``rasa shell``); ports that
  are taken (by a running ``run``) are replaced by free ones;
* ``health``  probe the Rasa server, its model, the action server and the agent desk on loopback and say which
  is down (``--json`` for a machine; exit 1 when any is down; bot.ops.health);
* ``compliance consume``  the compliance consumer: the event broker into the compliance record
  (bot.compliance.consumer; ``run`` starts it);
* ``report``  the compliance report: conversations, risk, referrals, hand-overs, fallbacks and rising pitches by
  day, week, channel, segment, tactic, bank or debt type, as a table, CSV or JSON, and PNG charts
  (bot.compliance.report);
* ``audit verify``  check the compliance record's hash chain (exit 1 on an edited or deleted turn);
* ``retention apply``  delete what is past its retention period and say what (bot.compliance.retention);
* ``evaluate`` the NLU evaluation on the held-out file against a baseline, with cross-validation
  (bot.nlu.evaluation);
* ``nlu-report`` render ``reports/nlu/README.md`` from the figures in ``reports/nlu/*.json``;
* ``turn-lengths`` render every turn the bot can compose and print the longest one and the distribution of turn
  and first-bubble lengths (exit 1 if a turn breaks the limits of bot.details; bot.turn_catalogue);
* ``legal-review`` write ``docs/legal-review.md``, the table of every legal statement with its provision and
  source, from the knowledge files (``--check``: exit 1 if the file is out of date; bot.legal_review);
* ``tune-blend`` choose the intent blender's settings by cross-validation on the training data
  (bot.nlu.blend_tuning; trains five NLU models);
* ``leads``  list, export (CSV/JSON) and audit the consented seller leads, for a ``leads`` credential
  (bot.leads.cli);
* ``agents`` issue, list and revoke the agent desk's per-agent credentials (bot.handoff.credentials);
* ``bench``  start a stock Rasa baseline, then the project, put the same REST and NLU load on each and write
  msg/s, latency percentiles, RSS and start time side by side to ``reports/perf/`` (bot.bench.run).
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Tuple

from bot import PROJECT_ROOT
from bot.knowledge import KnowledgeError, default_knowledge, load_lexicon


def _check() -> int:
    try:
        knowledge = default_knowledge()
        lexicon = load_lexicon()
    except KnowledgeError as err:
        print(f"Knowledge files are invalid: {err}", file=sys.stderr)
        return 1
    print(
        f"Knowledge OK: {len(knowledge.channels)} channels, {len(knowledge.provisions)} provisions, "
        f"{len(knowledge.figures)} figures, {len(knowledge.cases)} cases, "
        f"{len(knowledge.institutions)} institutions, {len(lexicon.flags)} tactic flags."
    )
    return 0


def _legal_review(args: argparse.Namespace) -> int:
    from bot.legal_review import REVIEW_PATH, unmapped_legal_responses, write_review
    from bot.texts import domain_responses

    knowledge, responses = default_knowledge(), domain_responses()
    unmapped = unmapped_legal_responses(knowledge, responses)
    if unmapped:
        print(f"Responses state law but rest on no knowledge entry (add them to data/knowledge/legal_basis.yml): "
              f"{', '.join(unmapped)}", file=sys.stderr)
        return 1
    current = write_review(knowledge, responses, check=args.check)
    if args.check and not current:
        print(f"{REVIEW_PATH} is out of date: run python -m bot legal-review", file=sys.stderr)
        return 1
    print(f"{REVIEW_PATH} is {'up to date' if current else 'written'}.")
    return 0


def _run(args: argparse.Namespace) -> int:
    from bot.channels.wechat.settings import WeChatSettings
    from bot.ops.model_store import ensure_model
    from bot.ops.servers import ServerConfig, ServerStartError, load_or_create_token, start_servers, supervise

    if _check():
        return 1
    model = ensure_model()
    token = load_or_create_token(PROJECT_ROOT / "var" / "auth_token")
    extra_env = {"HANDOFF_REFERENCE_KEY": load_or_create_token(PROJECT_ROOT / "var" / "reference_key",
                                                               "HANDOFF_REFERENCE_KEY")}
    session_key = load_or_create_token(PROJECT_ROOT / "var" / "session_key", "SESSION_TOKEN_KEY")
    config = ServerConfig(model=model, rasa_port=args.port, action_port=args.action_port, token=token,
                          endpoints=os.environ.get("ENDPOINTS", "endpoints.yml"), desk_port=args.desk_port,
                          extra_env=extra_env, session_key=session_key)
    print("Starting the agent desk, the action server and the Rasa server (about 40 s)...")
    try:
        servers = start_servers(config)
    except ServerStartError as err:
        print(f"Could not start: {err}", file=sys.stderr)
        return 1
    url = servers.rasa_url
    wechat = "mini-program channel configured" if not WeChatSettings.from_env().problems() else \
        "not configured: answers 503 until the WECHAT_* settings are set, see docs/channels/wechat.md"
    desk_credentials = "your own token (.venv/bin/python -m bot agents issue <name>)"
    print(
        "\nThe assistant is running.\n"
        f"  Widget:    {url}/webhooks/widget/   (the bank-app chat page; embed demo: {url}/webhooks/widget/demo.html)\n"
        f"  REST:      curl -XPOST {url}/webhooks/rest/webhook -H 'Content-Type: application/json' "
        "-d '{\"sender\":\"t1\",\"message\":\"你好\"}' | python3 -m json.tool --no-ensure-ascii\n"
        f"  socketio:  {url}/socket.io  (events user_uttered / bot_uttered, session_request first)\n"
        f"  WeChat:    {url}/webhooks/wechat_miniprogram/webhook  ({wechat})\n"
        f"  HTTP API:  {url}/status?token=<token>   token in var/auth_token (or $RASA_AUTH_TOKEN)\n"
        f"  Agent desk: {servers.desk_url}/   sign in with {desk_credentials}\n"
        f"  Logs:      {config.log_dir}\n"
        "  Health:    python -m bot health   (which part is down; a server that exits is restarted)\n"
        "Press Ctrl-C to stop all servers.",
        flush=True,
    )
    supervise(servers)
    print("\nStopped.")
    return 0


def _agents(args: argparse.Namespace) -> int:
    """``agents issue|list|revoke`` on the ticket store named by $HANDOFF_DATABASE_URL (default var/handoff.db)."""
    from bot.db import make_engine, upgrade_database
    from bot.handoff.config import DEFAULT_DATABASE_URL
    from bot.handoff.credentials import CredentialError, CredentialStore

    url = os.environ.get("HANDOFF_DATABASE_URL") or DEFAULT_DATABASE_URL
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////"):
        url = "sqlite:///" + str(PROJECT_ROOT / url[len("sqlite:///"):])
    if url == DEFAULT_DATABASE_URL:
        (PROJECT_ROOT / "var").mkdir(mode=0o700, exist_ok=True)
    upgrade_database(url, "handoff")
    engine = make_engine(url)
    store = CredentialStore(engine)
    try:
        if args.agents_command == "issue":
            token, credential = store.issue(args.name, args.role, args.days)
            print(f"Issued {credential.id} to {credential.agent} ({credential.role}), valid until "
                  f"{credential.expires_at:%Y-%m-%d %H:%M} UTC. The token, shown only now:\n{token}")
        elif args.agents_command == "revoke":
            revoked = store.revoke(credential=args.id, agent=args.name)
            print("Revoked: " + ", ".join(f"{c.id} ({c.agent})" for c in revoked))
        else:
            now = store.clock()
            for c in store.credentials(include_inactive=args.all):
                state = "revoked" if c.revoked_at else ("expired" if now >= c.expires_at else "active")
                print(f"{c.id}  {c.agent}  {c.role}  {state}  until {c.expires_at:%Y-%m-%d %H:%M} UTC")
    except CredentialError as err:
        print(f"Refused: {err}", file=sys.stderr)
        return 1
    finally:
        engine.dispose()
    return 0


def _health(args: argparse.Namespace) -> int:
    from bot.ops.health import check, report

    token = os.environ.get("RASA_AUTH_TOKEN")
    token_file = PROJECT_ROOT / "var" / "auth_token"
    if not token and token_file.exists():
        token = token_file.read_text().strip()
    results = check(args.port, args.action_port, args.desk_port or None, token)
    print(report(results, as_json=args.json))
    return 0 if all(r.up for r in results) else 1


def _shell_ports(action_port: int, rasa_port: int) -> Tuple[int, int]:
    """The ports ``shell`` uses: the given ones, or free ones where they are taken (e.g. by ``./scripts/run``),
    said on stdout."""
    from bot.ops.servers import available_port

    chosen = []
    for name, wanted in (("action server", action_port), ("Rasa server", rasa_port)):
        port = available_port(wanted)
        if port != wanted:
            print(f"Port {wanted} is taken (is ./scripts/run running?); the shell's {name} uses port {port}.",
                  flush=True)
        chosen.append(port)
    return chosen[0], chosen[1]


def _shell(args: argparse.Namespace) -> int:
    from bot.ops.model_store import ensure_model
    from bot.ops.servers import ServerConfig, server_environment

    if _check():
        return 1
    model = ensure_model()
    action_port, rasa_port = _shell_ports(args.action_port, args.port)
    # server_environment sets ACTION_SERVER_PORT, which endpoints.yml reads: Rasa calls this action server.
    config = ServerConfig(model=model, action_port=action_port, rasa_port=rasa_port)
    env = server_environment(config)
    action = subprocess.Popen(
        [sys.executable, "-m", "rasa_sdk", "--actions", "actions", "--port", str(action_port), "--quiet"],
        cwd=PROJECT_ROOT, env=env,
    )
    try:
        return subprocess.call(
            [sys.executable, "-m", "rasa", "shell", "--model", str(model), "--endpoints", "endpoints.yml",
             "--port", str(rasa_port)],
            cwd=PROJECT_ROOT, env=env,
        )
    finally:
        action.terminate()
        action.wait()


def _compliance_commands(commands: argparse._SubParsersAction) -> None:
    from bot.compliance.report import GROUPINGS

    db_help = "SQLAlchemy URL of the compliance record (default: $COMPLIANCE_DATABASE_URL or var/compliance.db)"
    compliance = commands.add_parser("compliance", help="the compliance consumer")
    compliance_commands = compliance.add_subparsers(dest="action", required=True)
    consume = compliance_commands.add_parser("consume", help="read the event broker into the compliance record")
    consume.add_argument("--endpoints", type=Path, default=Path(os.environ.get("ENDPOINTS", "endpoints.yml")),
                         help="the endpoints file Rasa runs with (its event_broker section)")
    consume.add_argument("--db", default=None, help=db_help)
    compliance_commands.add_parser("sample", help="render reports/compliance/ from a generated sample")
    report = commands.add_parser("report", help="the compliance report")
    report.add_argument("--from", dest="start", default=None, help="first day, YYYY-MM-DD (China time; "
                                                                   "default: 28 days before --to)")
    report.add_argument("--to", dest="end", default=None, help="last day, YYYY-MM-DD (default: today)")
    report.add_argument("--by", choices=GROUPINGS, default="day", help="grouping (default day)")
    report.add_argument("--format", choices=("table", "csv", "json"), default="table")
    report.add_argument("--charts", type=Path, default=None, help="also write PNG charts into this folder")
    report.add_argument("--db", default=None, help=db_help)
    audit = commands.add_parser("audit", help="check the compliance record")
    audit_commands = audit.add_subparsers(dest="action", required=True)
    verify = audit_commands.add_parser("verify", help="check the turns' hash chain (exit 1 if broken)")
    verify.add_argument("--db", default=None, help=db_help)
    retention = commands.add_parser("retention", help="delete what is past its retention period")
    retention_commands = retention.add_subparsers(dest="action", required=True)
    apply = retention_commands.add_parser("apply", help="delete and print what was deleted")
    apply.add_argument("--turn-days", type=int, default=None,
                       help="days turns are kept (default $COMPLIANCE_TURN_RETENTION_DAYS or 180)")
    apply.add_argument("--aggregate-days", type=int, default=None,
                       help="days conversation counts are kept (default $COMPLIANCE_AGGREGATE_RETENTION_DAYS or "
                            "1095)")
    apply.add_argument("--db", default=None, help=db_help)
    apply.add_argument("--lead-days", type=int, default=None,
                       help="days consented seller leads are kept (default $LEADS_RETENTION_DAYS or 90)")
    apply.add_argument("--leads-db", default=None,
                       help="SQLAlchemy URL of the leads store (default: $LEADS_DATABASE_URL or var/leads.db)")
    apply.add_argument("--tracker-days", type=int, default=None,
                       help="days a conversation is kept in the tracker store after its latest event (default "
                            "$TRACKER_RETENTION_DAYS or 180)")
    apply.add_argument("--endpoints", default="endpoints.yml",
                       help="the endpoints file whose SQL tracker store is cleaned (default endpoints.yml)")


def _compliance(args: argparse.Namespace) -> int:
    import logging

    from bot.compliance.store import open_store

    if args.command == "compliance" and args.action == "sample":
        from bot.compliance.sample import render_sample

        for path in render_sample(PROJECT_ROOT / "reports" / "compliance"):
            print(f"Written: {path.relative_to(PROJECT_ROOT)}")
        return 0
    if args.command == "compliance":
        from bot.compliance.consumer import run as consume

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        endpoints = args.endpoints if args.endpoints.is_absolute() else PROJECT_ROOT / args.endpoints
        return consume(endpoints, args.db)
    if args.command == "report":
        from bot.compliance.report import ReportError
        from bot.compliance.report import main as report_main

        try:
            return report_main(open_store(args.db), args.start, args.end, args.by, args.format, args.charts)
        except ReportError as err:
            print(f"Report: {err}", file=sys.stderr)
            return 2
    if args.command == "audit":
        from bot.compliance.chain import verify

        engine = open_store(args.db)
        with engine.connect() as connection:
            result = verify(connection)
        engine.dispose()
        for problem in result.problems:
            print(problem)
        print(f"{result.checked} sealed turns checked: " + ("the chain is intact." if result.ok else
                                                              "the record was changed."))
        return 0 if result.ok else 1
    from bot.compliance.retention import RetentionPolicy
    from bot.compliance.retention import apply as apply_retention

    policy = RetentionPolicy.from_env(args.turn_days, args.aggregate_days)
    engine = open_store(args.db)
    deleted = apply_retention(engine, policy)
    engine.dispose()
    print(deleted.describe(policy))
    from bot.leads import store as lead_store

    lead_policy = lead_store.LeadRetention.from_env(args.lead_days)
    leads_engine = lead_store.open_store(args.leads_db)
    lead_deleted = lead_store.apply_retention(leads_engine, lead_policy)
    leads_engine.dispose()
    print(f"seller leads older than {lead_policy.lead_days} days deleted: {lead_deleted['leads']}")
    print(f"lead read audit rows older than {lead_policy.audit_days} days deleted: {lead_deleted['lead_reads']}")
    from bot import tracker_retention

    tracker_days = tracker_retention.tracker_days_from_env(args.tracker_days)
    tracker_url = tracker_retention.tracker_store_url(Path(args.endpoints))
    if tracker_url is None:
        print(f"tracker store: not a SQL store in {args.endpoints}; nothing deleted")
        return 0
    gone, events = tracker_retention.apply(tracker_url, tracker_days)
    print(f"tracker conversations idle for more than {tracker_days} days deleted: {gone} ({events} events)")
    return 0


def _turn_lengths() -> int:
    from bot.details import default_details
    from bot.risk import default_risk_engine
    from bot.turn_catalogue import Catalogue, sent_alone, summary

    turns = Catalogue(default_knowledge(), default_risk_engine(), default_details()).all_turns(sent_alone())
    print(summary(turns))
    return 1 if any(turn.problems() for turn in turns) else 0


def main(argv=None) -> int:
    """Parse ``argv`` and run the command. Returns the process exit code."""
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check", help="validate the knowledge files")
    commands.add_parser("train", help="train the model if its inputs changed")
    run = commands.add_parser("run", help="start the assistant on loopback")
    run.add_argument("--port", type=int, default=int(os.environ.get("RASA_PORT", 5005)))
    run.add_argument("--action-port", type=int, default=int(os.environ.get("ACTION_SERVER_PORT", 5055)))
    run.add_argument("--desk-port", type=int, default=int(os.environ.get("HANDOFF_DESK_PORT", 5056)),
                     help="port of the agent desk (default 5056)")
    shell = commands.add_parser("shell", help="chat with the assistant in the terminal")
    shell.add_argument("--action-port", type=int, default=int(os.environ.get("ACTION_SERVER_PORT", 5055)),
                       help="action server port (default 5055; a free one if it is taken)")
    shell.add_argument("--port", type=int, default=int(os.environ.get("RASA_PORT", 5005)),
                       help="port of the shell's own Rasa server (default 5005; a free one if it is taken)")
    evaluate = commands.add_parser("evaluate", help="evaluate NLU on the held-out file against a baseline")
    evaluate.add_argument("--no-cross-validation", action="store_true",
                          help="skip the 5-fold cross-validation (which trains five models)")
    commands.add_parser("crisis-answers", help="measure crisis answers on danger, stress and hardship messages "
                                               "(tests/data/crisis_holdout.yml) with the trained model")
    commands.add_parser("nlu-report", help="render reports/nlu/README.md from the figures in reports/nlu/*.json")
    commands.add_parser("tune-blend", help="choose the intent blender's settings by cross-validation "
                                           "on the training data (trains five NLU models)")
    commands.add_parser("turn-lengths", help="print the longest turn and the distribution of turn lengths")
    legal = commands.add_parser("legal-review", help="write docs/legal-review.md from the knowledge files")
    legal.add_argument("--check", action="store_true", help="only check that the file is up to date (exit 1 if not)")
    health = commands.add_parser("health", help="say which server is down")
    health.add_argument("--port", type=int, default=int(os.environ.get("RASA_PORT", 5005)))
    health.add_argument("--action-port", type=int, default=int(os.environ.get("ACTION_SERVER_PORT", 5055)))
    health.add_argument("--desk-port", type=int, default=int(os.environ.get("HANDOFF_DESK_PORT", 5056)),
                        help="port of the agent desk (0: no desk)")
    health.add_argument("--json", action="store_true", help="print JSON")
    bench = commands.add_parser("bench", help="measure the project beside a stock Rasa baseline "
                                              "(REST msg/s, latency, NLU parse/s, RSS, start time)")
    bench.add_argument("--duration", type=float, default=20.0, help="seconds per load level (default 20)")
    bench.add_argument("--clients", default="1,8,32", help="REST client counts, comma-separated (default 1,8,32)")
    bench.add_argument("--only", choices=("stock", "project"), default=None, help="measure only one of the two")
    bench.add_argument("--out", type=Path, default=None, help="output folder (default reports/perf)")
    bench.add_argument("--growth", type=int, default=0, metavar="TURNS",
                       help="also time one conversation of TURNS turns: turn 10 against the last (default 0: off)")
    bench.add_argument("--growth-only", action="store_true",
                       help="with --growth: measure only the conversation growth, no load levels")
    bench.add_argument("--report-only", action="store_true",
                       help="measure nothing: render README.md and bench.png again from <out>/bench.json")
    from bot.leads.cli import add_commands as add_lead_commands

    add_lead_commands(commands)
    agents = commands.add_parser("agents", help="issue, list and revoke agent desk credentials")
    agent_commands = agents.add_subparsers(dest="agents_command", required=True)
    issue = agent_commands.add_parser("issue", help="issue a credential to one person; prints its token once")
    issue.add_argument("name", help="the agent's name, as the desk shows and audits it")
    issue.add_argument("--role", choices=("agent", "compliance", "leads"), default="agent")
    issue.add_argument("--days", type=int, default=90, help="days until it expires (default 90, at most 366)")
    revoke = agent_commands.add_parser("revoke", help="revoke a credential by id, or every one of an agent")
    target = revoke.add_mutually_exclusive_group(required=True)
    target.add_argument("--id", help="the credential's id (python -m bot agents list)")
    target.add_argument("--name", help="revoke every active credential of this agent")
    listing = agent_commands.add_parser("list", help="list the active credentials (never the tokens)")
    listing.add_argument("--all", action="store_true", help="also revoked and expired ones")
    _compliance_commands(commands)
    args = parser.parse_args(argv)
    if args.command == "check":
        return _check()
    if args.command == "train":
        from bot.ops.model_store import ensure_model

        ensure_model()
        return 0
    if args.command == "run":
        return _run(args)
    if args.command == "health":
        return _health(args)
    if args.command == "agents":
        return _agents(args)
    if args.command == "leads":
        from bot.leads.cli import main as leads_main

        return leads_main(args)
    if args.command == "turn-lengths":
        return _turn_lengths()
    if args.command == "legal-review":
        return _legal_review(args)
    if args.command in ("compliance", "report", "audit", "retention"):
        return _compliance(args)
    if args.command == "evaluate":
        from bot.nlu.evaluation import evaluate as run_evaluation

        run_evaluation(cross_validation=not args.no_cross_validation)
        return 0
    if args.command == "crisis-answers":
        from bot.nlu.crisis_answers import measure
        from bot.ops.model_store import ensure_model

        measure(ensure_model())
        from bot.nlu.report import write_report

        print(f"Written: {write_report()}")
        return 0
    if args.command == "nlu-report":
        from bot.nlu.report import write_report

        print(f"Written: {write_report()}")
        return 0
    if args.command == "bench":
        from bot.bench.run import DEFAULT_OUT, parse_clients
        from bot.bench.run import main as bench_main

        if args.growth_only and args.growth < 1:
            parser.error("--growth-only needs --growth TURNS")
        try:
            clients = [] if args.growth_only else parse_clients(args.clients)
        except ValueError as err:
            parser.error(str(err))
        return bench_main(clients, args.duration, args.only, args.out or DEFAULT_OUT, args.report_only,
                          growth_turns=args.growth)
    if args.command == "tune-blend":
        from bot.nlu.blend_tuning import tune

        tune()
        return 0
    return _shell(args)


if __name__ == "__main__":
    sys.exit(main())
