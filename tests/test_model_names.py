"""The names a user chooses between, and every older name loading its unchanged weights."""

from __future__ import annotations

from pathlib import Path

import pytest

from lagllama.cli import main
from lagllama.forecasting.specs import DEFAULT_MODEL, parse_model
from lagllama.pretrained import ALIASES, CHECKPOINTS_DIR, load_pretrained, sha256_file

#: Every shipped checkpoint's SHA-256 as released: a name never changes its weights.
RELEASED = {
    "lagllama-small": "c0af3b2766e8584836400bcc03dabc1f612c0c85f92f3fcef0737cd279959eb2",
    "lagllama-base": "a31ac5df4c84edaf3791b2fb4ced957517e9a2e786f9d6b85ad4a9380f638d9a",
    "lagllama-v2-small": "f8fe211d7d0beafc0cc38a9f5794d5077e2ebe5622d975d162fea6092c29d739",
    "lagllama-v2-small-seed1": "80712066db44b35033bb09c095915190d3ac57c332e6c2525afc6bc1c5b47eca",
    "lagllama-v2-base": "e4055ef1c1bd6c193cffc2d3189082216bb84e6619f4c9c326c9a3f3c1bea2da",
    "lagllama-v2-large": "a28e7711ba3fa1c28c981d880436665d6bdf215d81306649a8323b563ed37402",
    "lagllama-v3-small": "dd738b8781d419a0a333052154d0dc4d761b6dc2f0f99681943591f0f3350a75",
    "lagllama-v3-small-seed1": "5a1326375d15e11b6e04e8002d4d2fae566fbbada3015c31da77819558e7e5bc",
}


@pytest.mark.parametrize("name", [*RELEASED, *ALIASES])
def test_every_name_loads_its_released_weights(name: str) -> None:
    card, state = load_pretrained(name)
    target = ALIASES.get(name, name)
    assert card["sha256"] == RELEASED[target]
    assert sha256_file(CHECKPOINTS_DIR / f"{target}.safetensors") == RELEASED[target]
    assert state and all(v.isfinite().all() for v in state.values())


def test_the_model_card_lists_every_name() -> None:
    card = (CHECKPOINTS_DIR / "MODEL_CARD.md").read_text()
    for name in [*RELEASED, *ALIASES, DEFAULT_MODEL]:
        assert f"`{name}`" in card, name
    for name, sha in RELEASED.items():
        assert sha[:8] in card, name


def test_the_default_is_a_hybrid_and_three_names_are_listed(capsys) -> None:
    spec = parse_model(None)
    assert spec.name == DEFAULT_MODEL and spec.is_hybrid
    assert [m.name for m in spec.lag_llama] == ["lagllama-v3-small", "lagllama-v3-small-seed1"]
    assert ALIASES["lagllama-fast"] in [m.name for m in spec.lag_llama]  # its best member
    assert main(["models"]) == 0
    first = capsys.readouterr().out.split("\n\n")[0].splitlines()
    assert [line.split()[0] for line in first] == [DEFAULT_MODEL, *ALIASES]
    assert all("s/series" in line and "MB" in line for line in first)


def test_an_unknown_name_lists_the_choices(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="lagllama-fast.*lagllama-large"):
        parse_model("lagllama-huge")
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        parse_model(str(tmp_path / "missing.ckpt"))
