"""Recommendations by id and embedding algebra on WordNet documents (WordLlama embeddings).

    python examples/algebra_wordnet.py

Documents are synsets' lemma lists ("dog, domestic dog, Canis familiaris"), indexed by id.
"""

from __future__ import annotations


from nnlift import Recommender
from nnlift.algebra import analogy, direction, walk
from nnlift.datasets import load_wordnet
from nnlift.embed import embed_texts


def main() -> None:
    data = load_wordnet()
    documents = data.gallery.tolist()
    vectors = embed_texts(documents, progress=False)
    recommender = Recommender().fit(vectors, documents)
    print(f"indexed {len(recommender):,} documents with {recommender.index!r}\n")

    def first(word: str) -> str:
        for doc in documents:
            if doc.split(", ")[0] == word:
                return doc
        raise KeyError(word)

    for word in ("violin", "bread", "hurricane"):
        try:
            item = first(word)
        except KeyError:
            continue
        print(f"similar to {item!r}:")
        for doc, score in recommender.similar(item, k=5).pairs():
            print(f"    {score:.3f}  {doc}")
    print()
    groups = {}
    for name, words in (
        ("sea", ("sea", "ocean", "lake", "river")),
        ("land", ("desert", "mountain", "forest", "plain")),
    ):
        groups[name] = [d for d in documents if d.split(", ")[0] in words]
    if groups["sea"] and groups["land"]:
        along = direction(groups["sea"], groups["land"], recommender)
        start = groups["sea"][0]
        print(f"walk from {start!r} towards the centroid of {groups['land']} (k=3):")
        for step in walk(start, along, recommender, scales=(0.2, 0.5, 0.8, 1.1), k=3):
            print(f"    scale {step.scale:.1f}: {step.ids}   new: {step.new}")
    print()
    for a, b, c in (("man", "king", "woman"), ("day", "sun", "night")):
        try:
            step = analogy(first(a), first(b), first(c), recommender, k=3)
        except KeyError as missing:
            print(f"analogy {a}:{b} :: {c}:? skipped ({missing} is not in the gallery side)")
            continue
        print(f"{a}:{b} :: {c}:?  ->  {step.ids}")


if __name__ == "__main__":
    main()
