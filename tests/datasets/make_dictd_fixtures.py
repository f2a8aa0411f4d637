"""Write the dictd fixtures in tests/datasets/fixtures from a few real GCIDE and FOLDOC entries.

    python tests/datasets/make_dictd_fixtures.py   # needs dict-gcide and dict-foldoc installed

The entries are copied verbatim; the index keeps each entry's real headword lines (several for one
entry where the real index has them) and the database is dictzip: gzip with dictzip's "RA" extra field.
"""

import struct
import zlib
from pathlib import Path

from nnlift.datasets.dictd import _DIGITS, _number, find_dictd

KEEP = {
    "gcide": ["00-database-short", "Detract", "Terrier", "Granger stocks", "bluejacket", "Blue-john", "0", "Way"],
    "foldoc": ["00-database-short", "!!!batch", "association for simula users", "afuu", "socket", "ttl", "cav"],
}
ALSO = {"gcide": {"Acacia colletioides": "Wait-a-while"}, "foldoc": {}}
LETTERS = "".join(sorted(_DIGITS, key=_DIGITS.get))


def b64(number: int) -> str:
    digits = ""
    while True:
        number, digit = divmod(number, 64)
        digits = LETTERS[digit] + digits
        if not number:
            return digits


def dictzip(data: bytes) -> bytes:
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15)
    body = compressor.compress(data) + compressor.flush()
    ra = struct.pack("<HHHH", 1, 58315, 1, len(body))  # version, chunk length, chunk count, chunk sizes
    extra = b"RA" + struct.pack("<H", len(ra)) + ra
    header = b"\x1f\x8b\x08\x04" + struct.pack("<I", 0) + b"\x02\x03" + struct.pack("<H", len(extra)) + extra
    return header + body + struct.pack("<II", zlib.crc32(data), len(data) & 0xFFFFFFFF)


def main() -> None:
    import gzip

    out = Path(__file__).resolve().parent / "fixtures"
    for name, keep in KEEP.items():
        index, body = find_dictd(name)
        data = gzip.decompress(body.read_bytes())
        lines = index.read_text(encoding="utf-8").splitlines()
        spans = {}
        for line in lines:
            word, start, length = line.split("\t")[:3]
            spans.setdefault(word.lower(), []).append((word, start, length))
        chosen = [s for k in keep for s in spans[k.lower()]]
        for key, target in ALSO[name].items():
            chosen += [(key, s, n) for _, s, n in spans[target.lower()]]
        text, new_index = b"", []
        placed = {}
        for word, start, length in chosen:
            if (start, length) not in placed:
                entry = f"{word}\t{start}\t{length}"  # for the error message only
                s, n = _number(start, entry), _number(length, entry)
                placed[start, length] = (len(text), n)
                text += data[s : s + n]
            at, n = placed[start, length]
            new_index.append(f"{word}\t{b64(at)}\t{b64(n)}")
        (out / f"{name}.index").write_text("\n".join(sorted(new_index)) + "\n", encoding="utf-8")
        (out / f"{name}.dict.dz").write_bytes(dictzip(text))
        print(name, len(new_index), "index lines,", len(placed), "entries,", len(text), "bytes")


if __name__ == "__main__":
    main()
