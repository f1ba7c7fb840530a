"""Generate the dev set's hand-typed typos of top crates (`bench/devset/typos.yaml`).

    python -m bench.devset.make_typos [--top 1000] [--per-kind 38] [--seed 11] [--out FILE]

For each of the `--top` most downloaded names it generates the typing errors a person makes
(the kinds in `KINDS`), drops every candidate that is not a legal crate name, that is the
target itself under crates.io's identity (case, and `-` vs `_`: swapping separators is the
same crate, not a typo), or that is a real crate: in the top-20k list, among the 153,876
crate names of the whole crates.io index of 2024-08-09 (JustFrederik/crates.io-index-minfied,
a local git copy given with `--minified`), or found real by reading its index file
(`known_real.txt`). A typo that is a real crate would measure the detector against a
legitimate package. Typos shorter than three characters are dropped too: nearly all such
names are taken.

Sampling is stratified by error kind and spread over targets: per kind, the targets are
shuffled with the seed and visited round-robin, one random candidate each, until the kind has
`--per-kind` typos. The output is deterministic for a given seed and inputs.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path

import yaml

from bench.devset.build_legit import DEFAULT_MINIFIED, snapshot_names
from bench.devset.near_names import DEFAULT_TOP_CSV, canonical, load_top_csv
from mirror.errors import BadRequest
from mirror.index import validate_name

HERE = Path(__file__).resolve().parent
SEED = 11
SEPARATORS = "-_"
# Nearly every one- and two-character name is registered on crates.io (3 of the 3 two-letter
# typos checked against the index were real crates), so shorter typos measure nothing.
MIN_TYPO_LENGTH = 3  # characters

# QWERTY rows with each row's horizontal offset in key widths: neighbours are the keys on the
# same row one step away and the keys on the rows above/below less than one key width away.
_ROWS = (("1234567890", 0.0), ("qwertyuiop", 0.5), ("asdfghjkl", 0.75), ("zxcvbnm", 1.25))


def _qwerty_neighbours() -> dict[str, str]:
    pos = {c: (r, i + off) for r, (keys, off) in enumerate(_ROWS) for i, c in enumerate(keys)}
    out: dict[str, str] = {}
    for c, (row, x) in pos.items():
        near = [
            d
            for d, (r2, x2) in pos.items()
            if d != c and abs(r2 - row) <= 1 and abs(x2 - x) < (1.01 if r2 == row else 1.0)
        ]
        out[c] = "".join(sorted(near))
    return out


QWERTY = _qwerty_neighbours()


def omitted_letter(name: str) -> Iterable[str]:
    """`serde` -> `sede`: one letter or digit left out."""
    for i, c in enumerate(name):
        if c.isalnum():
            yield name[:i] + name[i + 1 :]


def doubled_letter(name: str) -> Iterable[str]:
    """`serde` -> `serrde`: one key pressed twice."""
    for i, c in enumerate(name):
        if c.isalnum():
            yield name[: i + 1] + c + name[i + 1 :]


def transposed(name: str) -> Iterable[str]:
    """`serde` -> `sedre`: two adjacent letters swapped (separators stay put)."""
    for i in range(len(name) - 1):
        a, b = name[i], name[i + 1]
        if a != b and a.isalnum() and b.isalnum():
            yield name[:i] + b + a + name[i + 2 :]


def adjacent_key(name: str) -> Iterable[str]:
    """`serde` -> `swrde`: a letter replaced by a QWERTY neighbour."""
    for i, c in enumerate(name):
        for d in QWERTY.get(c, ""):
            yield name[:i] + d + name[i + 1 :]


def separator_omitted(name: str) -> Iterable[str]:
    """`rust_decimal` -> `rustdecimal`."""
    for i, c in enumerate(name):
        if c in SEPARATORS:
            yield name[:i] + name[i + 1 :]


def separator_inserted(name: str) -> Iterable[str]:
    """`serde_json` -> `ser_de_json`: a separator inside a word (the name's own kind)."""
    sep = next((c for c in name if c in SEPARATORS), "-")
    for i in range(1, len(name)):
        if name[i - 1].isalnum() and name[i].isalnum():
            yield name[:i] + sep + name[i:]


def plural_changed(name: str) -> Iterable[str]:
    """`bytes` -> `byte`, `regex` -> `regexs`: a plural `s` removed or added."""
    if name.endswith("s") and len(name) > 2:
        yield name[:-1]
    elif name[-1].isalpha():
        yield name + "s"


_TRAILING_NUMBER = re.compile(r"^(.*?)([-_]?)(\d+)$")


def version_suffix_changed(name: str) -> Iterable[str]:
    """`base64` -> `base63`/`base65`/`base`, `proc-macro2` -> `proc-macro1`/`proc-macro`."""
    m = _TRAILING_NUMBER.match(name)
    if m is None or not m.group(1):
        return
    stem, sep, number = m.groups()
    value = int(number)
    for other in (value - 1, value + 1):
        if other >= 0:
            yield f"{stem}{sep}{other}"
    yield stem


KINDS: dict[str, Callable[[str], Iterable[str]]] = {
    "omitted_letter": omitted_letter,
    "doubled_letter": doubled_letter,
    "transposed": transposed,
    "adjacent_key": adjacent_key,
    "separator_omitted": separator_omitted,
    "separator_inserted": separator_inserted,
    "plural": plural_changed,
    "version_suffix": version_suffix_changed,
}


def _legal(name: str) -> bool:
    try:
        validate_name(name)
    except BadRequest:
        return False
    return True


def candidates(target: str, real: set[str]) -> dict[str, list[str]]:
    """Every typo of `target` per kind: legal, not the target, not a real crate (canonical)."""
    own = canonical(target)
    out: dict[str, list[str]] = {}
    for kind, make in KINDS.items():
        seen: set[str] = set()
        kept = []
        for typo in make(target):
            key = canonical(typo)
            if (
                key == own
                or key in real
                or key in seen
                or len(key) < MIN_TYPO_LENGTH
                or not _legal(typo)
            ):
                continue
            seen.add(key)
            kept.append(typo)
        if kept:
            out[kind] = kept
    return out


def sample(top: list[str], real: set[str], per_kind: int, seed: int) -> list[dict[str, object]]:
    """`per_kind` typos of each kind, spread over the targets, no canonical duplicates."""
    rng = random.Random(seed)
    per_target = {name: candidates(name, real) for name in top}
    rank = {name: i for i, name in enumerate(top, start=1)}
    chosen: list[dict[str, object]] = []
    taken: set[str] = set()
    for kind in KINDS:
        targets = [t for t in top if kind in per_target[t]]
        rng.shuffle(targets)
        picked = 0
        while picked < per_kind and targets:
            for target in list(targets):
                options = [o for o in per_target[target][kind] if canonical(o) not in taken]
                if not options:
                    targets.remove(target)
                    continue
                typo = rng.choice(options)
                taken.add(canonical(typo))
                chosen.append(
                    {
                        "name": typo,
                        "target": target,
                        "target_rank": rank[target],
                        "error_kind": kind,
                    }
                )
                picked += 1
                if picked == per_kind:
                    break
    return chosen


def real_names(top_all: list[str], index_names: Iterable[str], known: Path | None) -> set[str]:
    """Canonical names known to exist: top-20k, every crate of the 2024 index, and the names
    found real by reading their index files (`known_real.txt`)."""
    real = {canonical(n) for n in top_all} | {canonical(n) for n in index_names}
    if known is not None and known.exists():
        for line in known.read_text(encoding="utf-8").splitlines():
            if line.strip() and not line.startswith("#"):
                real.add(canonical(line.strip()))
    return real


def render(typos: list[dict[str, object]], meta: dict[str, object]) -> str:
    counts: dict[str, int] = {}
    for t in typos:
        counts[str(t["error_kind"])] = counts.get(str(t["error_kind"]), 0) + 1
    header = [
        "# Hand-typed typos of top crates: the dev set's typo positives (issue 11).",
        "# Generated by `python -m bench.devset.make_typos` (deterministic; see README.md here).",
        f"# Targets: ranks 1-{meta['top']} of {meta['top_csv']} (top-20k list, 2024-03-18).",
        "# Kinds: " + ", ".join(KINDS) + ".",
        "# Dropped: illegal names, separator swaps of the target ('-' == '_' on crates.io),",
        "# and real crates: the top-20k list, every name of the 2024-08-09 index",
        f"# ({meta['index_commit']}) and known_real.txt; and typos shorter",
        f"# than {MIN_TYPO_LENGTH} characters (nearly all such names are taken).",
        f"# Sampling: seed {meta['seed']}, {meta['per_kind']} per kind, targets shuffled and",
        "# visited round-robin so the typos spread over many targets.",
        "# Counts: "
        + ", ".join(f"{k} {counts.get(k, 0)}" for k in KINDS)
        + f" (total {len(typos)}).",
        "",
    ]
    body = yaml.safe_dump(
        {"seed": meta["seed"], "typos": typos},
        sort_keys=False,
        width=100,
        default_flow_style=None,
    )
    return "\n".join(header) + body


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.devset.make_typos",
        description="Generate hand-typed typos of the top crates for the name-check dev set.",
    )
    parser.add_argument("--top-csv", type=Path, default=DEFAULT_TOP_CSV)
    parser.add_argument(
        "--minified",
        type=Path,
        default=DEFAULT_MINIFIED,
        help="git dir of JustFrederik/crates.io-index-minfied (every crate name of 2024-08-09)",
    )
    parser.add_argument(
        "--known-real",
        type=Path,
        default=HERE / "known_real.txt",
        help="names found to be real crates by reading their index files",
    )
    parser.add_argument("--top", type=int, default=1000, help="targets: the N top names")
    parser.add_argument("--per-kind", type=int, default=38, help="typos per error kind")
    parser.add_argument("--seed", type=int, default=SEED)
    parser.add_argument("--out", type=Path, default=HERE / "typos.yaml")
    args = parser.parse_args(argv)
    top_all = load_top_csv(args.top_csv)
    names, head = snapshot_names(args.minified)
    real = real_names(top_all, names, args.known_real)
    typos = sample(top_all[: args.top], real, args.per_kind, args.seed)
    meta = {
        "top": args.top,
        "top_csv": args.top_csv.name,
        "index_commit": head,
        "seed": args.seed,
        "per_kind": args.per_kind,
    }
    args.out.write_text(render(typos, meta), encoding="utf-8")
    print(f"wrote {args.out}: {len(typos)} typos of {len({t['target'] for t in typos})} targets")
    return 0


if __name__ == "__main__":
    sys.exit(main())
