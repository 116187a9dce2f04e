"""Build the category model's training set and train the model.

The training set is rebuilt from the reference data on every run and never
stored in the repository. Labels are weak: each comes from a registry or label
column, not from reading the title.

- ENERGY STAR refrigerators and clothes washers: brand, model number, type and
  the product word, labelled appliance.
- Open Food Facts products: the product name, labelled organic_food when
  `labels_tags` names an organic label, else none.
- UCI Online Retail (a gift and homeware shop): every distinct description,
  labelled none.
- Bank card transactions: the description, labelled public_transport for the
  rail operators in `PUBLIC_TRANSPORT_OPERATORS`, else none.
- Hand-written titles (`artifacts/handwritten-titles.yaml`): own sentences and
  templates, labelled as written.

A title that two sources label differently is dropped. The set is split 80/20,
stratified by class with a fixed seed. The model is trained on the 80 % and
scored on the 20 %, and those scores go into the card.
"""

from __future__ import annotations

import csv
import hashlib
import itertools
import logging
import random
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import sklearn
import yaml
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import precision_recall_fscore_support
from sklearn.model_selection import train_test_split

from greenloop.categories import Category
from greenloop.identify.model import NO_CATEGORY, CategoryModel, ngram_codes

logger = logging.getLogger(__name__)

HANDWRITTEN_NAME = "handwritten-titles.yaml"
SEED = 20261204
HELD_OUT_FRACTION = 0.2
# The artifact keeps only the n-grams found in the most titles, so it stays small.
MAX_FEATURES = 30_000
MIN_DOCUMENT_FREQUENCY = 2
# Inverse of the L2 penalty strength (scikit-learn's C).
# NOTE: not tuned; a search over C on a validation split may score better.
REGULARISATION_C = 10.0
# Bank descriptions of rail operators. The other "Transport" rows are taxis,
# parking and car tracking, which are not public transport.
PUBLIC_TRANSPORT_OPERATORS = ("gautrain",)
ORGANIC_LABEL_TAGS = ("en:organic", "en:eu-organic", "fr:ab-agriculture-biologique")
FRIDGE_FILE = Path("energy-star") / "refrigerators.csv"
WASHER_FILE = Path("energy-star") / "clothes-washers.csv"
FOOD_FILE = Path("open-food-facts") / "products.tsv"
RETAIL_FILE = Path("online-retail") / "online_retail.parquet"
BANK_FILE = Path("bank-transactions") / "transactions.csv"


class TrainingDataError(ValueError):
    """A training source that is missing or does not have the expected columns."""


@dataclass(frozen=True, slots=True)
class TrainingSet:
    """Case-folded titles with their class labels and the source each came from."""

    titles: tuple[str, ...]
    labels: tuple[str, ...]
    sources: tuple[str, ...]
    dropped_conflicts: int

    def digest(self) -> str:
        """Return the SHA-256 of the sorted (label, title) pairs."""
        hasher = hashlib.sha256()
        for label, title in sorted(zip(self.labels, self.titles, strict=True)):
            hasher.update(f"{label}\t{title}\n".encode())
        return hasher.hexdigest()

    def counts(self) -> dict[str, int]:
        """Return the number of titles per class."""
        return dict(sorted(Counter(self.labels).items()))


@dataclass(frozen=True, slots=True)
class TrainingResult:
    """A trained model with its held-out scores."""

    model: CategoryModel
    scores: dict[str, Any]
    held_out_titles: tuple[str, ...]
    held_out_labels: tuple[str, ...]


def build_training_set(data_dir: Path, handwritten: Path | None = None) -> TrainingSet:
    """Read every source and return the deduplicated, labelled training set."""
    rows = itertools.chain(
        _energy_star_titles(data_dir),
        _food_titles(data_dir),
        _retail_titles(data_dir),
        _bank_titles(data_dir),
        _handwritten_titles(handwritten),
    )
    return _deduplicate(rows)


def retrain(
    data_dir: Path, out: Path, handwritten: Path | None = None
) -> TrainingResult:
    """Rebuild the training set, train, write the artifact and card to `out`.

    The scores in the card are measured with the model as loaded back from
    `out`, so they include the loss from storing weights as float16.
    """
    training_set = build_training_set(data_dir, handwritten)
    result = train(training_set)
    result.model.save(out)
    loaded = CategoryModel.load(out)
    scores = score(loaded, list(result.held_out_titles), list(result.held_out_labels))
    card = make_card(training_set, scores, data_dir)
    CategoryModel(
        ngrams=loaded.ngrams,
        idf=loaded.idf,
        coef=loaded.coef,
        intercept=loaded.intercept,
        classes=loaded.classes,
        card=card,
    ).save(out)
    logger.info("wrote category model %s to %s", card["version"], out)
    return TrainingResult(
        model=CategoryModel.load(out),
        scores=scores,
        held_out_titles=result.held_out_titles,
        held_out_labels=result.held_out_labels,
    )


def train(training_set: TrainingSet, seed: int = SEED) -> TrainingResult:
    """Train on a stratified 80 % split and score on the remaining 20 %."""
    train_titles, test_titles, train_labels, test_labels = train_test_split(
        list(training_set.titles),
        list(training_set.labels),
        test_size=HELD_OUT_FRACTION,
        random_state=seed,
        stratify=list(training_set.labels),
    )
    ngrams, idf = select_ngrams(train_titles)
    unfitted = CategoryModel(
        ngrams=ngrams,
        idf=idf,
        coef=np.zeros((1, len(ngrams))),
        intercept=np.zeros(1),
        classes=[NO_CATEGORY],
    )
    classifier = LogisticRegression(
        C=REGULARISATION_C, max_iter=2000, class_weight="balanced"
    )
    classifier.fit(unfitted.features(train_titles), train_labels)
    model = CategoryModel(
        ngrams=ngrams,
        idf=idf,
        coef=classifier.coef_,
        intercept=classifier.intercept_,
        classes=[str(label) for label in classifier.classes_],
    )
    scores = score(model, test_titles, test_labels)
    return TrainingResult(
        model=model,
        scores=scores,
        held_out_titles=tuple(test_titles),
        held_out_labels=tuple(test_labels),
    )


def select_ngrams(titles: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Pick the n-grams seen in the most titles and compute their smoothed IDF.

    Keeps at most MAX_FEATURES codes found in at least MIN_DOCUMENT_FREQUENCY
    titles, ties broken by code, and returns them sorted with
    idf = ln((1 + titles) / (1 + document frequency)) + 1, scikit-learn's
    smoothed formula.
    """
    rows, codes = ngram_codes(titles)
    pairs = np.unique(np.stack([codes, rows]), axis=1)
    unique_codes, frequency = np.unique(pairs[0], return_counts=True)
    eligible = frequency >= MIN_DOCUMENT_FREQUENCY
    unique_codes, frequency = unique_codes[eligible], frequency[eligible]
    order = np.lexsort((unique_codes, -frequency))[:MAX_FEATURES]
    chosen = np.sort(unique_codes[order])
    chosen_frequency = frequency[np.searchsorted(unique_codes, chosen)]
    idf = np.log((1 + len(titles)) / (1 + chosen_frequency)) + 1.0
    return chosen, idf


def score(model: CategoryModel, titles: list[str], labels: list[str]) -> dict[str, Any]:
    """Return accuracy, macro F1 and per-class precision, recall, F1 and support."""
    predicted = [
        proposal.category.value if proposal.category else NO_CATEGORY
        for proposal in model.propose(titles)
    ]
    classes = sorted(set(labels) | set(predicted))
    precision, recall, f1, support = precision_recall_fscore_support(
        labels, predicted, labels=classes, zero_division=0
    )
    per_class = {
        label: {
            "precision": round(float(precision[index]), 4),
            "recall": round(float(recall[index]), 4),
            "f1": round(float(f1[index]), 4),
            "support": int(support[index]),
        }
        for index, label in enumerate(classes)
    }
    correct = sum(1 for got, want in zip(predicted, labels, strict=True) if got == want)
    return {
        "held_out_titles": len(labels),
        "accuracy": round(correct / len(labels), 4),
        "macro_f1": round(float(np.mean(f1)), 4),
        "per_class": per_class,
    }


def make_card(
    training_set: TrainingSet, scores: dict[str, Any], data_dir: Path
) -> dict[str, Any]:
    """Return the model card: version, date, data procedure, scores, versions."""
    trained_at = datetime.now(UTC).replace(microsecond=0)
    digest = training_set.digest()
    return {
        "name": "greenloop category model",
        "version": f"{trained_at:%Y.%m.%d}-{digest[:8]}",
        "trained_at": trained_at.isoformat(),
        "scikit_learn_version": sklearn.__version__,
        "numpy_version": np.__version__,
        "algorithm": (
            "TF-IDF of character n-grams (1-3 characters of the lower-cased title "
            "padded with a space at each end, sublinear TF, "
            f"at most {MAX_FEATURES} n-grams seen in at least "
            f"{MIN_DOCUMENT_FREQUENCY} titles) and multinomial logistic regression "
            f"(C={REGULARISATION_C}, balanced class weights); weights stored as float16"
        ),
        "classes_meaning": (
            "a category id, or 'none' for titles outside every green category; a "
            "proposal routes an item to review and is never evidence"
        ),
        "data_procedure": {
            "command": "greenloop model train --data DIR",
            "data_dir_name": data_dir.name,
            "sources": {
                "energy_star": "refrigerators.csv and clothes-washers.csv -> appliance",
                "open_food_facts": (
                    f"products.tsv; labels_tags with one of {list(ORGANIC_LABEL_TAGS)} "
                    "-> organic_food, else none"
                ),
                "online_retail": "distinct descriptions -> none",
                "bank_transactions": (
                    f"descriptions containing {list(PUBLIC_TRANSPORT_OPERATORS)} "
                    "-> public_transport, else none"
                ),
                "handwritten": f"{HANDWRITTEN_NAME}, own titles and templates",
            },
            "deduplication": "titles labelled differently by two sources are dropped",
            "dropped_conflicts": training_set.dropped_conflicts,
            "split": (
                f"stratified {int((1 - HELD_OUT_FRACTION) * 100)}/"
                f"{int(HELD_OUT_FRACTION * 100)}, seed {SEED}; "
                "trained on the larger part"
            ),
            "titles": len(training_set.titles),
            "titles_per_class": training_set.counts(),
            "training_set_sha256": digest,
        },
        "scores": scores,
    }


def _energy_star_titles(data_dir: Path) -> Iterator[tuple[str, str, str]]:
    for relative, product_word, type_column in (
        (FRIDGE_FILE, "refrigerator", "Type"),
        (WASHER_FILE, "clothes washer", "Load Configuration"),
    ):
        for row in _read_csv(data_dir / relative, ("Brand Name", "Model Number")):
            model_number = row["Model Number"].replace("*", "").strip()
            kind = row.get(type_column, "").strip()
            title = f"{row['Brand Name'].strip()} {model_number} {kind} {product_word}"
            yield " ".join(title.split()), Category.APPLIANCE.value, "energy_star"


def _food_titles(data_dir: Path) -> Iterator[tuple[str, str, str]]:
    path = data_dir / FOOD_FILE
    for row in _read_csv(path, ("product_name", "labels_tags"), delimiter="\t"):
        name = row["product_name"].strip()
        if not name:
            continue
        tags = {tag.strip() for tag in row["labels_tags"].split(",")}
        organic = any(tag in tags for tag in ORGANIC_LABEL_TAGS)
        label = Category.ORGANIC_FOOD.value if organic else NO_CATEGORY
        yield name, label, "open_food_facts"


def _retail_titles(data_dir: Path) -> Iterator[tuple[str, str, str]]:
    import pyarrow.parquet as pq

    path = data_dir / RETAIL_FILE
    if not path.is_file():
        raise TrainingDataError(f"training source {path} not found")
    table = pq.read_table(path, columns=["Description"])
    descriptions = {
        str(text).strip() for text in table.column("Description").to_pylist() if text
    }
    for description in sorted(descriptions):
        if description and description != "Unknown":
            yield description, NO_CATEGORY, "online_retail"


def _bank_titles(data_dir: Path) -> Iterator[tuple[str, str, str]]:
    for row in _read_csv(data_dir / BANK_FILE, ("description",)):
        description = " ".join(row["description"].split())
        if not description:
            continue
        folded = description.casefold()
        is_transit = any(name in folded for name in PUBLIC_TRANSPORT_OPERATORS)
        label = Category.PUBLIC_TRANSPORT.value if is_transit else NO_CATEGORY
        yield description, label, "bank_transactions"


def _handwritten_titles(path: Path | None) -> Iterator[tuple[str, str, str]]:
    if path is None:
        resource = (
            resources.files("greenloop.identify") / "artifacts" / HANDWRITTEN_NAME
        )
        text = resource.read_text(encoding="utf-8")
        where = HANDWRITTEN_NAME
    else:
        text = path.read_text(encoding="utf-8")
        where = str(path)
    document = yaml.safe_load(text)
    classes = document.get("classes") if isinstance(document, dict) else None
    if not isinstance(classes, dict):
        raise TrainingDataError(f"{where}: expected a mapping under `classes`")
    limit = document.get("max_per_template", 100)
    if not isinstance(limit, int) or limit < 1:
        raise TrainingDataError(
            f"{where}: max_per_template is {limit!r}; expected a whole number >= 1"
        )
    generator = random.Random(SEED)
    for label, entry in classes.items():
        _check_class(label, entry, where)
        for title in entry.get("titles", []):
            yield str(title), str(label), "handwritten"
        for index, template in enumerate(entry.get("templates", [])):
            place = f"{where}: classes.{label}.templates[{index}]"
            for title in _expand(template, limit, generator, place):
                yield title, str(label), "handwritten"


def _check_class(label: str, entry: Any, where: str) -> None:
    known = [NO_CATEGORY, *(member.value for member in Category)]
    if label not in known:
        raise TrainingDataError(
            f"{where}: class {label!r} is unknown; expected one of {known}"
        )
    if not isinstance(entry, dict) or set(entry) - {"titles", "templates"}:
        raise TrainingDataError(
            f"{where}: classes.{label} must be a mapping with `titles` and/or "
            "`templates`"
        )


def _expand(
    template: Any, limit: int, generator: random.Random, place: str
) -> list[str]:
    if not isinstance(template, dict) or set(template) != {"pattern", "slots"}:
        raise TrainingDataError(f"{place}: expected exactly `pattern` and `slots`")
    pattern = str(template["pattern"])
    slots: Mapping[str, list[str]] = template["slots"]
    names = list(slots)
    combinations = list(itertools.product(*(slots[name] for name in names)))
    if len(combinations) > limit:
        combinations = generator.sample(combinations, limit)
    titles = []
    for values in combinations:
        try:
            title = pattern.format(**dict(zip(names, values, strict=True)))
        except KeyError as error:
            raise TrainingDataError(
                f"{place}: pattern {pattern!r} names slot {error} that `slots` "
                "does not define"
            ) from error
        titles.append(" ".join(title.split()))
    return titles


def _read_csv(
    path: Path, required: tuple[str, ...], delimiter: str = ","
) -> Iterator[dict[str, str]]:
    if not path.is_file():
        raise TrainingDataError(f"training source {path} not found")
    csv.field_size_limit(1 << 30)
    with path.open(encoding="utf-8-sig", newline="") as handle:
        reader = csv.DictReader(handle, delimiter=delimiter)
        missing = [name for name in required if name not in (reader.fieldnames or [])]
        if missing:
            raise TrainingDataError(
                f"{path}: missing columns {missing}; found {reader.fieldnames}"
            )
        for row in reader:
            yield {key: value or "" for key, value in row.items() if key}


def _deduplicate(rows: Iterable[tuple[str, str, str]]) -> TrainingSet:
    labels_by_title: dict[str, str] = {}
    source_by_title: dict[str, str] = {}
    conflicts: set[str] = set()
    for title, label, source in rows:
        key = title.casefold()
        existing_label = labels_by_title.get(key)
        if existing_label is None:
            labels_by_title[key] = label
            source_by_title[key] = source
        elif existing_label != label:
            conflicts.add(key)
    unique_titles = [key for key in labels_by_title if key not in conflicts]
    logger.info(
        "training set: %d titles, %d dropped for conflicting labels",
        len(unique_titles),
        len(conflicts),
    )
    return TrainingSet(
        titles=tuple(unique_titles),
        labels=tuple(labels_by_title[key] for key in unique_titles),
        sources=tuple(source_by_title[key] for key in unique_titles),
        dropped_conflicts=len(conflicts),
    )
