"""``lagllama models``: the names a user chooses between, with size, speed and one line each."""

from __future__ import annotations

import argparse

#: One line per name a user needs; speed is seconds per series at 2 threads and 100 paths,
#: the mean over the 7 benchmark datasets (README, "Models", where each was measured).
SUMMARIES = {
    "lagllama": "the default: two lagllama-v3-small seeds (paths mixed) and AutoTheta, "
    "quantiles averaged with weights fitted on rolling windows of the input",
    "lagllama-fast": "the fast single model: a 4-layer decoder (lagllama-v3-small-seed1), "
    "for millions of series",
    "lagllama-large": "the most accurate single model by the published 7: an 8-layer decoder, 5x slower",
}
SPEED = {"lagllama": 0.266, "lagllama-fast": 0.063, "lagllama-large": 0.303}


def add_parser(sub: argparse._SubParsersAction) -> None:
    """Register ``models``."""
    p = sub.add_parser(
        "models",
        help="list the models to choose from (and every older name that still loads)",
        description="The default, a fast and the most accurate single model, with parameters, "
        "file size and speed; then every shipped checkpoint's own name and SHA-256.",
    )
    p.set_defaults(func=cmd_models)


def _size(names: list[str]) -> tuple[int, float]:
    """Parameters and megabytes of the Lag-Llama checkpoints ``names``."""
    from lagllama.pretrained import ALIASES, CHECKPOINTS_DIR, read_card

    params = sum(int(read_card(n)["training"].get("parameters") or 0) for n in names)
    megabytes = sum(
        (CHECKPOINTS_DIR / f"{ALIASES.get(n, n)}.safetensors").stat().st_size / 1e6 for n in names
    )
    return params, megabytes


def cmd_models(args: argparse.Namespace) -> None:
    """``lagllama models``: print the three names, then the older ones."""
    from lagllama.forecasting.specs import parse_model
    from lagllama.pretrained import ALIASES, available_models, read_card

    rows = []
    for name, line in SUMMARIES.items():
        members = [m.name for m in parse_model(name).lag_llama]
        params, megabytes = _size(members)
        rows.append(
            f"{name:<16} {params / 1e6:5.2f}M params {megabytes:5.1f} MB "
            f"{SPEED[name]:6.3f} s/series  {line}"
        )
    print("\n".join(rows))
    shown = set(ALIASES.values())
    print("\nalso loadable by name (weights unchanged; lagllama/checkpoints/MODEL_CARD.md):")
    for name in available_models():
        alias = next((a for a, target in ALIASES.items() if target == name), None)
        note = f" (= {alias})" if name in shown else ""
        print(f"  {name:<26} sha256 {read_card(name)['sha256'][:12]}{note}")
