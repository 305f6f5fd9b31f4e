"""``transfigure promote``: metric-gated promotion, forced promotion, rollback and status.

    transfigure promote cyclegan --version 3                        # the gate (fid, margin 0)
    transfigure promote cyclegan --version 3 --metric kid --margin 0.5
    transfigure promote cyclegan --version 3 --force --reason "hotfix for #12"
    transfigure promote cyclegan --rollback --reason "artefacts on night scenes"
    transfigure promote cyclegan --status

Exit status: 0 promoted (or already champion), rolled back, status shown; 1 refused (the
message says why); 2 usage errors (unknown model, version or metric; missing reason).
The store is ``$MLFLOW_TRACKING_URI``, else the project's ``sqlite:///mlruns.db``.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any

from mlflow.exceptions import MlflowException

from transfigure.tracking.client import mlflow_client
from transfigure.tracking.promotion import (
    PromotionDecision,
    PromotionError,
    fmt,
    promote,
    promotion_status,
    rollback,
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", help="registered model name, e.g. cyclegan")
    what = parser.add_mutually_exclusive_group(required=True)
    what.add_argument("--version", help="the version to promote (the gate compares it with the champion)")
    what.add_argument("--rollback", action="store_true", help="give 'champion' back to the previous champion")
    what.add_argument("--status", action="store_true", help="show champion, challenger and the champion history")
    parser.add_argument("--metric", default="fid", help="primary metric of the gate (default: fid)")
    parser.add_argument(
        "--margin", type=float, default=0.0, help="the candidate must beat the champion by more than this (default: 0)"
    )
    parser.add_argument("--force", action="store_true", help="promote regardless of the gate (needs --reason)")
    parser.add_argument("--reason", help="why (required with --force and --rollback; recorded with the decision)")
    parser.add_argument("--actor", help="who decides (recorded; default: $USER)")
    parser.add_argument("--json", action="store_true", help="print the decision / status as JSON")


def _print_decision(decision: PromotionDecision, as_json: bool) -> None:
    if as_json:
        print(json.dumps(decision.to_dict(), indent=2))
        return
    verdict = {"promote": "PROMOTED", "force": "FORCED", "rollback": "ROLLED BACK", "unchanged": "UNCHANGED"}
    head = verdict.get(decision.action, "REFUSED")
    who = f"v{decision.candidate}" if decision.candidate else "-"
    print(f"{head} {decision.model} {who}: {decision.reason}")
    if decision.promoted:
        print(
            f"champion: {decision.model}@champion = v{decision.candidate} (load with "
            f"transfigure.load_translator({decision.model!r}, 'champion'))"
        )


def _number(value: Any) -> str:
    try:
        return fmt(float(value))
    except (TypeError, ValueError):
        return str(value)


def _print_status(status: dict[str, Any], as_json: bool) -> None:
    if as_json:
        print(json.dumps(status, indent=2))
        return

    def line(role: str, summary: dict[str, Any] | None) -> str:
        if summary is None:
            return f"{role}: none"
        metrics = ", ".join(f"{k}={_number(v)}" for k, v in summary["metrics"].items()) or "not evaluated"
        extra = ""
        if "promoted_by" in summary:
            extra = f"; promoted by {summary['promoted_by']} at {summary['promoted_at']}"
        return f"{role}: v{summary['version']} ({metrics}{extra})"

    print(f"model {status['model']}")
    print(line("champion", status["champion"]))
    print(line("challenger", status["challenger"]))
    print(f"history ({len(status['history'])} change(s) of champion):")
    for entry in status["history"]:
        value = f" {entry.get('metric')}={_number(entry['value'])}" if entry.get("value") is not None else ""
        was = f"was v{entry['previous']}" if entry.get("previous") else "first champion"
        print(
            f"  {entry.get('at')}  {entry.get('action'):<9} v{entry.get('version')} ({was}){value} by {entry.get('by')}"
        )


def _usage_error(message: str) -> int:
    print(f"transfigure promote: error: {message}", file=sys.stderr)
    return 2


def run(args: argparse.Namespace) -> int:
    if args.force and args.version is None:
        return _usage_error("--force needs --version (the version to force into champion)")
    if (args.force or args.rollback) and not (args.reason or "").strip():
        return _usage_error(f'{"--force" if args.force else "--rollback"} needs --reason "why" (it is recorded)')
    try:
        client = mlflow_client()
        if args.status:
            _print_status(promotion_status(args.model, client=client), args.json)
            return 0
        if args.rollback:
            decision = rollback(args.model, args.actor, args.reason, client=client)
        else:
            decision = promote(
                args.model,
                args.version,
                primary_metric=args.metric,
                margin=args.margin,
                force=args.force,
                reason=args.reason,
                actor=args.actor,
                client=client,
            )
    except PromotionError as exc:
        return _usage_error(str(exc))
    except MlflowException as exc:
        return _usage_error(f"MLflow store {mlflow_client()._registry_uri}: {exc.message}")
    _print_decision(decision, args.json)
    return 0 if decision.promoted else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="transfigure promote", description=__doc__.split("\n\n")[0])
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
