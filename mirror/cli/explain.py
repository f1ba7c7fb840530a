"""`crate-mirror explain NAME[@VERSION]`: the evidence behind a malicious-crate decision.

Shows what a 403, the audit log and the near-name feed say, in full: every signal with its
points, the thresholds, the evidence that could not be had, when a quarantine lifts, and the
command that approves the crate. It judges the way serving does (through the same core, the
same cache and upstream) but records nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import Any, TextIO

from mirror.cli.args import path_arg
from mirror.cli.serve import add_settings_arguments, settings_from_args
from mirror.errors import ConfigError, MirrorError


def register(sub: Any) -> None:
    p = sub.add_parser(
        "explain",
        help="show the evidence the mirror weighs about a crate (malicious-crate rule)",
        description="Judge NAME (and VERSION) as the mirror would serve it: every piece of "
        "evidence with its points, the verdict, when a quarantine lifts, and how to approve. "
        "Uses the mirror's settings (--config), cache and upstream; records nothing.",
    )
    p.add_argument("target", metavar="NAME[@VERSION]")
    add_settings_arguments(p)
    p.add_argument("--policy", type=path_arg, help="the policy to judge with")
    p.add_argument("--upstream", dest="upstream_index", help="upstream sparse index URL")
    p.add_argument("--offline", action="store_true", default=None, help="never ask upstream")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    name, _, version = args.target.partition("@")
    try:
        settings = settings_from_args(args)
    except ConfigError as e:
        print(f"crate-mirror explain: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    if settings.policy is None:
        print("crate-mirror explain: give the policy (--policy or --config)", file=sys.stderr)
        return 2
    return asyncio.run(_explain(settings, name, version or None, args.json, sys.stdout))


async def _explain(
    settings: Any, name: str, version: str | None, as_json: bool, out: TextIO
) -> int:
    from mirror.serving.open import open_mirror

    try:
        core, close = open_mirror(settings)
    except ConfigError as e:
        print(f"crate-mirror explain: invalid configuration:\n{e}", file=sys.stderr)
        return 2
    except MirrorError as e:  # the cache cannot be opened (a file, read-only)
        print(f"crate-mirror explain: {e}", file=sys.stderr)
        return 1
    try:
        await core.start()
        explanation = await core.explain(name, version)
    except MirrorError as e:
        print(f"crate-mirror explain: {e}", file=sys.stderr)
        return 1
    finally:
        await close()
    view = explanation.view
    judgements = [("the crate", view.crate)]
    if explanation.version is not None:
        judgements.append((f"version {version}", explanation.version))
    if as_json:
        out.write(
            json.dumps(
                {
                    "crate": name,
                    "version": version,
                    "crate_decision": _judged_json(view.crate),
                    "version_decision": _judged_json(explanation.version)
                    if explanation.version
                    else None,
                    "held_by": explanation.held_by.reason if explanation.held_by else None,
                    "approve": explanation.approve,
                },
                indent=2,
            )
            + "\n"
        )
        return 0
    for label, judged in judgements:
        a, d = judged.assessment, judged.decision
        t = a.thresholds
        print(
            f"{name} ({label}): {d.action.value} by {d.rule} - score {a.score:g} "
            f"(warn {t['warn']:g}, quarantine {t['quarantine']:g}, block {t['block']:g})",
            file=out,
        )
        for s in a.signals:
            until = f"  (until {s.expires:%Y-%m-%d %H:%M} UTC)" if s.expires else ""
            print(f"  {s.points:+6.2f}  {s.id:<22} {s.text}{until}", file=out)
        if a.meant:
            print(f"  probably meant: {a.meant}", file=out)
        if a.missing:
            print(f"  missing evidence: {', '.join(a.missing)}", file=out)
        if a.until is not None:
            print(f"  held until {a.until:%Y-%m-%d %H:%M} UTC (or until approved)", file=out)
        if d.rule in ("allow", "approved"):
            print(f"  let through: {d.reason}", file=out)
    stops = any(j.decision.blocks for _, j in judgements)
    approve = explanation.approve if stops else None
    if explanation.held_by is not None:
        print(
            f"also held back by {explanation.held_by.rule}: {explanation.held_by.reason}", file=out
        )
        # A capability hold names its own command (the capabilities to approve).
        approve = approve or explanation.held_by.details.get("approve")
    if approve:
        print(f"to approve after review: {approve}", file=out)
    return 0


def _judged_json(judged: Any) -> dict[str, Any]:
    return {
        "action": judged.decision.action.value,
        "rule": judged.decision.rule,
        "reason": judged.decision.reason,
        **judged.assessment.to_json(),
    }
