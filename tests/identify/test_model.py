"""Category model: the shipped artifact, n-gram coding, loading and retraining."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.feature_extraction.text import CountVectorizer

import greenloop.identify.model as model_module
from greenloop.categories import Category
from greenloop.identify.model import (
    ARTIFACT_NAME,
    CategoryModel,
    ModelArtifactError,
    Proposal,
    card_path,
    count_matrix,
    describe_code,
    ngram_codes,
)

ARTIFACTS = Path(__file__).resolve().parents[2] / "src/greenloop/identify/artifacts"
MAX_ARTIFACT_BYTES = 5 * 1024 * 1024


@pytest.fixture(scope="module")
def shipped() -> CategoryModel:
    return CategoryModel.load()


def test_shipped_artifact_under_limit() -> None:
    size = (ARTIFACTS / ARTIFACT_NAME).stat().st_size
    assert size < MAX_ARTIFACT_BYTES


def test_shipped_card_has_fields(shipped: CategoryModel) -> None:
    for key in (
        "version",
        "trained_at",
        "scikit_learn_version",
        "data_procedure",
        "scores",
    ):
        assert key in shipped.card, key


def test_shipped_card_version_matches(shipped: CategoryModel) -> None:
    card = json.loads((ARTIFACTS / "category-model.json").read_text("utf-8"))
    assert shipped.version == card["version"]


@pytest.mark.parametrize(
    ("title", "category"),
    [
        ("美的 双开门冰箱 一级能效", Category.APPLIANCE),
        ("Whirlpool top load washer", Category.APPLIANCE),
        ("比亚迪 海豹 纯电动", Category.NEW_ENERGY_VEHICLE),
        ("杭州地铁 乘车码", Category.PUBLIC_TRANSPORT),
        ("二手 笔记本电脑 九成新", Category.SECOND_HAND),
        ("有机 小米 500g", Category.ORGANIC_FOOD),
        ("organic green tea", Category.ORGANIC_FOOD),
        ("绿色食品 苹果 一箱", Category.GREEN_FOOD),
        ("绿色连衣裙 雪纺", None),
        ("GREEN REGENCY TEACUP AND SAUCER", None),
        ("有机玻璃 托盘", None),
    ],
)
def test_propose_known_titles(
    shipped: CategoryModel, title: str, category: Category | None
) -> None:
    assert shipped.propose([title])[0].category == category


def test_propose_empty_batch(shipped: CategoryModel) -> None:
    assert shipped.propose([]) == []


def test_propose_empty_title(shipped: CategoryModel) -> None:
    proposal = shipped.propose([""])[0]
    assert isinstance(proposal, Proposal)
    assert 0.0 <= proposal.probability <= 1.0


def test_probabilities_sum_to_one(shipped: CategoryModel) -> None:
    rows = shipped.probabilities(["冰箱", "dress", "", "地铁 二手 有机"])
    assert np.allclose(rows.sum(axis=1), 1.0, atol=1e-5)


def test_proposal_matches_probabilities(shipped: CategoryModel) -> None:
    titles = ["冰箱 一级能效", "red dress"]
    rows = shipped.probabilities(titles)
    proposals = shipped.propose(titles)
    for row, proposal in zip(rows, proposals, strict=True):
        assert proposal.probability == pytest.approx(float(row.max()), rel=1e-6)


@given(st.text(min_size=1, max_size=4))
@settings(max_examples=200, deadline=None)
def test_code_describes_ngram(text: str) -> None:
    # Whitespace and NUL are normalised away before coding, so skip them here.
    clean = "".join(ch for ch in text if not ch.isspace() and ch != "\0")[:3]
    if not clean:
        return
    _, codes = ngram_codes([clean])
    described = {describe_code(int(code)) for code in codes}
    assert clean.lower() in described or len(clean.lower()) != len(clean)


def test_counts_match_scikit_learn() -> None:
    titles = ["GREEN Regency  teacup", "美的 冰箱 一级能效", "aa aa", "x"]
    padded = [" " + " ".join(title.lower().split()) + " " for title in titles]
    reference = CountVectorizer(analyzer="char", ngram_range=(1, 3), lowercase=False)
    expected = reference.fit_transform(padded).toarray()
    terms = reference.get_feature_names_out()
    codes = np.array([_code_of(str(term)) for term in terms], dtype=np.int64)
    order = np.argsort(codes)
    got = count_matrix(titles, codes[order]).toarray()
    assert np.array_equal(got, expected[:, order])


def _code_of(term: str) -> int:
    code = 0
    for offset, character in enumerate(term):
        code |= ord(character) << (21 * offset)
    return code


def test_save_load_round_trip(shipped: CategoryModel, tmp_path: Path) -> None:
    target = tmp_path / "model.npz"
    shipped.save(target)
    loaded = CategoryModel.load(target)
    titles = ["冰箱", "dress", "有机 大米"]
    assert np.allclose(
        loaded.probabilities(titles), shipped.probabilities(titles), atol=1e-3
    )
    assert loaded.version == shipped.version


def test_missing_artifact_names_command(tmp_path: Path) -> None:
    with pytest.raises(ModelArtifactError, match="greenloop model train"):
        CategoryModel.load(tmp_path / "absent.npz")


def test_missing_card_rejected(shipped: CategoryModel, tmp_path: Path) -> None:
    target = tmp_path / "model.npz"
    shipped.save(target)
    card_path(target).unlink()
    with pytest.raises(ModelArtifactError, match="card"):
        CategoryModel.load(target)


def test_wrong_shape_rejected() -> None:
    with pytest.raises(ModelArtifactError, match="shape"):
        CategoryModel(
            ngrams=np.array([1, 2, 3]),
            idf=np.ones(3),
            coef=np.zeros((2, 4)),
            intercept=np.zeros(2),
            classes=["none", "appliance"],
        )


def test_unknown_class_rejected() -> None:
    with pytest.raises(ModelArtifactError, match="not a category id"):
        CategoryModel(
            ngrams=np.array([1]),
            idf=np.ones(1),
            coef=np.zeros((1, 1)),
            intercept=np.zeros(1),
            classes=["furniture"],
        )


def test_unsorted_ngrams_rejected() -> None:
    with pytest.raises(ModelArtifactError, match="sorted"):
        CategoryModel(
            ngrams=np.array([3, 1]),
            idf=np.ones(2),
            coef=np.zeros((1, 2)),
            intercept=np.zeros(1),
            classes=["none"],
        )


@pytest.mark.slow
def test_retrain_reproduces_training_set(shared_data: Path, tmp_path: Path) -> None:
    from greenloop.identify.training import build_training_set, retrain

    result = retrain(shared_data, tmp_path / "model.npz")
    card = result.model.card
    rebuilt = build_training_set(shared_data)
    assert card["data_procedure"]["training_set_sha256"] == rebuilt.digest()
    assert result.scores["macro_f1"] > 0.9
    assert (tmp_path / "model.json").is_file()


def test_nul_in_title_keeps_rows(shipped: CategoryModel) -> None:
    titles = ["冰箱\0一级能效", "red dress", "二手 手机"]
    alone = shipped.probabilities(titles[1:])
    together = shipped.probabilities(titles)
    assert together.shape == (3, len(shipped.classes))
    assert np.allclose(together[1:], alone, atol=1e-6)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "classes:\n  furniture:\n    titles: [sofa]\n",
            "class 'furniture' is unknown",
        ),
        ("classes:\n  none:\n    names: [sofa]\n", "must be a mapping"),
        (
            "classes:\n  none:\n    templates:\n      - pattern: '{a} {b}'\n"
            "        slots: {a: [x]}\n",
            "names slot 'b'",
        ),
        ("max_per_template: 0\nclasses: {}\n", "max_per_template is 0"),
        ("- a list\n", "expected a mapping under `classes`"),
    ],
)
def test_invalid_handwritten_rejected(tmp_path: Path, text: str, message: str) -> None:
    from greenloop.identify.training import TrainingDataError, _handwritten_titles

    path = tmp_path / "titles.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(TrainingDataError, match=message):
        list(_handwritten_titles(path))


def test_handwritten_expansion_is_stable() -> None:
    from greenloop.identify.training import _handwritten_titles

    first = list(_handwritten_titles(None))
    second = list(_handwritten_titles(None))
    assert first == second
    assert len(first) > 1000


def test_hash_and_binary_lookup_agree(
    shipped: CategoryModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    titles = ["冰箱 海尔 新一级能效", "WHITE HANGING HEART T-LIGHT HOLDER", "", "ü ß ☃"]
    monkeypatch.setattr(model_module, "HASH_LOOKUP_MIN_CODES", 0)
    hashed = shipped.probabilities(titles)
    monkeypatch.setattr(model_module, "HASH_LOOKUP_MIN_CODES", 10**12)
    searched = shipped.probabilities(titles)
    assert np.array_equal(hashed, searched)


def test_title_scores_alone_and_in_batch(shipped: CategoryModel) -> None:
    titles = [f"organic apple juice {number}" for number in range(20)]
    together = shipped.probabilities(titles)
    for position, title in enumerate(titles):
        assert np.array_equal(shipped.probabilities([title])[0], together[position])
