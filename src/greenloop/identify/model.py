"""The category model: a character n-gram classifier over product titles.

The model proposes the green category a title most likely belongs to, so that
items without evidence reach review and merchants can be asked for evidence. It
never decides `green` on its own: a proposal is a routing hint, not evidence.

Character n-grams need no word segmentation, so one model reads Chinese and
English titles. A title is lower-cased, its whitespace collapsed and a space put
at each end; every 1-, 2- and 3-character slice is then one n-gram. An n-gram is
coded exactly as one integer, 21 bits per code point (Unicode needs 21), so the
whole batch is cut and counted with NumPy array operations instead of a Python
loop per title.

The artifact is not a pickle. It stores the n-gram codes, their inverse document
frequencies and the linear weights as NumPy arrays, with a JSON card beside it.
It therefore loads under any scikit-learn version and never runs code from the
file.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import scipy.sparse as sp
from sklearn.preprocessing import normalize

from greenloop.categories import Category

ARTIFACT_NAME = "category-model.npz"
_BITS_PER_POINT = 21
_POINT_MASK = (1 << _BITS_PER_POINT) - 1
# The class label of titles that belong to no green category.
NO_CATEGORY = "none"
_ARRAY_KEYS = ("ngrams", "idf", "coef", "intercept", "classes")
# Titles scored at once; a chunk of 8,192 titles of about 40 characters needs
# tens of megabytes for its n-gram arrays.
SCORE_CHUNK_TITLES = 8_192
# N-gram codes from which a hash lookup beats a binary search (see `_columns`).
HASH_LOOKUP_MIN_CODES = 50_000


class ModelArtifactError(ValueError):
    """A model artifact or card that is missing, unreadable or inconsistent."""


class Proposal(NamedTuple):
    """The model's most probable class for one title and its probability.

    `category` is None when the most probable class is "no green category".
    A named tuple, because a batch creates one per title and a named tuple is
    about twice as fast to create as a frozen dataclass.
    """

    category: Category | None
    probability: float


def ngram_codes(titles: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """Cut titles into character 1- to 3-grams, coded as integers.

    Returns two equal-length arrays: the title index of each n-gram and its code.
    An n-gram of code points c0, c1, c2 has the code c0 | c1 << 21 | c2 << 42,
    with absent positions zero, so codes of different n-grams never collide.
    """
    texts = [" " + " ".join(title.lower().split()) + " " for title in titles]
    # NUL separates titles; n-grams that contain it are discarded below. A NUL
    # inside a title would shift every later title, so it becomes a space.
    joined = "\0".join(texts)
    if joined.count("\0") != len(texts) - 1:
        joined = "\0".join(text.replace("\0", " ") for text in texts)
    points = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32).astype(np.int64)
    title_of_point = np.cumsum(points == 0)
    present = points != 0
    grams = [points]
    valid = [present]
    starts = [title_of_point]
    for length in (2, 3):
        count = len(points) - length + 1
        if count <= 0:
            break
        code = points[:count].copy()
        keep = present[:count].copy()
        for offset in range(1, length):
            code |= points[offset : offset + count] << (_BITS_PER_POINT * offset)
            keep &= present[offset : offset + count]
        grams.append(code)
        valid.append(keep)
        starts.append(title_of_point[:count])
    mask = np.concatenate(valid)
    return np.concatenate(starts)[mask], np.concatenate(grams)[mask]


def describe_code(code: int) -> str:
    """Return the characters an n-gram code stands for, for reading a model."""
    characters = []
    while code:
        characters.append(chr(code & _POINT_MASK))
        code >>= _BITS_PER_POINT
    return "".join(characters)


class CategoryModel:
    """A TF-IDF character n-gram model with multinomial logistic-regression weights.

    `ngrams` is the sorted array of n-gram codes in the vocabulary, and `idf`
    contains the inverse document frequency of each. `coef` has one row per
    class and one column per n-gram. TF is sublinear (1 + log count) and each row is
    L2-normalised, as scikit-learn's `TfidfVectorizer(sublinear_tf=True)` does.
    """

    def __init__(
        self,
        ngrams: np.ndarray,
        idf: np.ndarray,
        coef: np.ndarray,
        intercept: np.ndarray,
        classes: Sequence[str],
        card: dict[str, Any] | None = None,
    ) -> None:
        if coef.shape != (len(classes), len(ngrams)):
            raise ModelArtifactError(
                f"coef has shape {coef.shape}; expected "
                f"({len(classes)}, {len(ngrams)}) for the classes and n-grams"
            )
        if idf.shape != (len(ngrams),) or intercept.shape != (len(classes),):
            raise ModelArtifactError(
                "idf must have one value per n-gram and intercept one value per class"
            )
        if len(ngrams) > 1 and not bool(np.all(ngrams[1:] > ngrams[:-1])):
            raise ModelArtifactError("n-gram codes must be sorted and distinct")
        self.classes = tuple(classes)
        self._categories = tuple(_category_of(label) for label in self.classes)
        self.card = dict(card or {})
        self._ngrams = ngrams.astype(np.int64)
        self._ngram_set = pa.array(self._ngrams)
        self._idf = idf.astype(np.float32)
        self._coef_t = np.ascontiguousarray(coef.T.astype(np.float32))
        self._intercept = intercept.astype(np.float32)

    @property
    def ngrams(self) -> np.ndarray:
        """The sorted n-gram codes of the vocabulary."""
        return self._ngrams

    @property
    def idf(self) -> np.ndarray:
        """The inverse document frequency of each n-gram."""
        return self._idf

    @property
    def coef(self) -> np.ndarray:
        """The weights, one row per class and one column per n-gram."""
        return self._coef_t.T

    @property
    def intercept(self) -> np.ndarray:
        """The intercept of each class."""
        return self._intercept

    @property
    def version(self) -> str:
        """The artifact version recorded in its card, or "unversioned"."""
        return str(self.card.get("version", "unversioned"))

    @classmethod
    def load(cls, path: Path | None = None) -> CategoryModel:
        """Load an artifact; without `path`, the one shipped in the package."""
        if path is None:
            resource = resources.files("greenloop.identify") / "artifacts"
            path = Path(str(resource / ARTIFACT_NAME))
        if not path.is_file():
            raise ModelArtifactError(
                f"model artifact {path} not found; run `greenloop model train` "
                "to build one"
            )
        card = _read_card(card_path(path))
        with np.load(path, allow_pickle=False) as arrays:
            missing = [key for key in _ARRAY_KEYS if key not in arrays.files]
            if missing:
                raise ModelArtifactError(
                    f"model artifact {path} lacks arrays {missing}; "
                    "rebuild it with `greenloop model train`"
                )
            return cls(
                ngrams=arrays["ngrams"],
                idf=arrays["idf"],
                coef=arrays["coef"],
                intercept=arrays["intercept"],
                classes=[str(label) for label in arrays["classes"]],
                card=card,
            )

    def save(self, path: Path) -> None:
        """Write the arrays to `path` (.npz) and the card beside it (.json)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            np.savez_compressed(
                handle,
                ngrams=self._ngrams,
                idf=self._idf,
                coef=self._coef_t.T.astype(np.float16),
                intercept=self._intercept,
                classes=np.array(self.classes, dtype=str),
            )
        card_path(path).write_text(
            json.dumps(self.card, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
        )

    def features(self, titles: Sequence[str]) -> sp.csr_matrix:
        """Return the L2-normalised sublinear TF-IDF matrix of the titles."""
        counts = count_matrix(titles, self._ngrams)
        np.log(counts.data, out=counts.data)
        counts.data += 1.0
        counts.data *= self._idf[counts.indices]
        return normalize(counts, norm="l2", copy=False)

    def probabilities(self, titles: Sequence[str]) -> np.ndarray:
        """Return one row of class probabilities per title, columns as `classes`.

        Scores are computed with NumPy on the n-gram columns of each title, in
        chunks of `SCORE_CHUNK_TITLES`. One title and a batch go through the same
        steps, so a title gets the same probabilities alone and in any batch.
        """
        scores = np.empty((len(titles), len(self.classes)), dtype=np.float32)
        for start in range(0, len(titles), SCORE_CHUNK_TITLES):
            chunk = titles[start : start + SCORE_CHUNK_TITLES]
            scores[start : start + len(chunk)] = self._scores(chunk)
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def _scores(self, titles: Sequence[str]) -> np.ndarray:
        """Return the linear class scores of the L2-normalised TF-IDF rows."""
        scores = np.tile(self._intercept, (len(titles), 1))
        vocabulary_size = len(self._ngrams)
        if vocabulary_size == 0:
            return scores
        rows, codes = ngram_codes(titles)
        columns, known = self._columns(codes)
        # One sorted key per (title, n-gram) occurrence; runs of equal keys
        # are the counts, and keys are grouped by title.
        keys = rows[known] * vocabulary_size + columns[known]
        if keys.size == 0:
            return scores
        if len(titles) * vocabulary_size < 2**32:
            # Sorting 32-bit keys takes about half the time of 64-bit ones.
            keys = keys.astype(np.uint32)
        keys.sort()
        run_starts = np.flatnonzero(np.concatenate(([True], keys[1:] != keys[:-1])))
        counts = np.diff(np.append(run_starts, keys.size)).astype(np.float32)
        distinct = keys[run_starts]
        title_of_run = distinct // vocabulary_size
        column_of_run = distinct - title_of_run * vocabulary_size

        weights = np.log(counts)
        weights += 1.0
        weights *= self._idf[column_of_run]
        title_starts = np.flatnonzero(
            np.concatenate(([True], title_of_run[1:] != title_of_run[:-1]))
        )
        norms = np.sqrt(np.add.reduceat(weights * weights, title_starts))
        sums = np.add.reduceat(
            weights[:, None] * self._coef_t[column_of_run], title_starts, axis=0
        )
        scores[title_of_run[title_starts]] += sums / norms[:, None]
        return scores

    def _columns(self, codes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Return the vocabulary column of each n-gram code and which are known.

        Both lookups are exact, so they give the same columns. A hash lookup
        (Arrow's `index_in`) is about three times faster than a binary search
        on large arrays, but building its table costs about 0.5 ms per call.
        """
        if len(codes) >= HASH_LOOKUP_MIN_CODES:
            found = pc.index_in(pa.array(codes), value_set=self._ngram_set)
            columns = found.fill_null(-1).to_numpy().astype(np.int64)
            known = columns >= 0
            columns[~known] = 0
            return columns, known
        columns = np.searchsorted(self._ngrams, codes)
        columns[columns == len(self._ngrams)] = 0
        return columns, self._ngrams[columns] == codes

    def propose(self, titles: Sequence[str]) -> list[Proposal]:
        """Propose the most probable category of each title, with its probability."""
        if len(titles) == 0:
            return []
        probabilities = self.probabilities(titles)
        best = probabilities.argmax(axis=1)
        best_probability = probabilities[np.arange(len(best)), best]
        return [
            Proposal(self._categories[index], float(probability))
            for index, probability in zip(
                best.tolist(), best_probability.tolist(), strict=True
            )
        ]


def count_matrix(titles: Sequence[str], ngrams: np.ndarray) -> sp.csr_matrix:
    """Count each known n-gram in each title; unknown n-grams are ignored."""
    rows, codes = ngram_codes(titles)
    if len(ngrams) == 0:
        return sp.csr_matrix((len(titles), 0), dtype=np.float32)
    columns = np.searchsorted(ngrams, codes)
    columns[columns == len(ngrams)] = 0
    known = ngrams[columns] == codes
    values = np.ones(int(known.sum()), dtype=np.float32)
    # Converting from COO sums the duplicate (title, n-gram) entries into counts.
    matrix = sp.coo_matrix(
        (values, (rows[known].astype(np.int32), columns[known].astype(np.int32))),
        shape=(len(titles), len(ngrams)),
    )
    return matrix.tocsr()


def card_path(artifact: Path) -> Path:
    """Return the JSON card path that belongs to an artifact path."""
    return artifact.with_suffix(".json")


def _category_of(label: str) -> Category | None:
    if label == NO_CATEGORY:
        return None
    try:
        return Category(label)
    except ValueError as error:
        raise ModelArtifactError(
            f"model class {label!r} is not a category id nor {NO_CATEGORY!r}"
        ) from error


def _read_card(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise ModelArtifactError(
            f"model card {path} not found; an artifact and its card are written "
            "together by `greenloop model train`"
        )
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ModelArtifactError(
            f"model card {path} is not valid JSON: {error}"
        ) from error
    if not isinstance(card, dict):
        raise ModelArtifactError(f"model card {path} must hold a JSON object")
    return card
