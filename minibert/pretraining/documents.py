"""Raw text files -> documents -> sentences: the first step of BERT's pre-training data.

Lecture lectures/pretraining.md, section "From raw text to sentence pairs"; notebook notebooks/03_pretraining.ipynb.
Next-sentence prediction needs to know where a document ends, so a file is first cut into documents:
- a WikiText file (lines like ` = Title = `) at its top-level headings: one article, one document;
- any other file at its blank lines: one block, one document (the format of Google's BERT data: a sentence
  per line, a blank line between documents). In a book or a play, blank lines separate paragraphs or
  speeches, far shorter than one training example; there `min_words` gathers consecutive blocks into
  documents of at least that many words (a scene, part of a chapter). Otherwise almost every IsNext pair
  comes from a short paragraph and every NotNext pair is long, and next-sentence prediction learns the
  length of the input instead of whether B follows A (right on the training text, chance on other text).
Inside a document, lines are joined and cut into sentences at `.`, `!` or `?` followed by a capital letter.
"""
from __future__ import annotations

import re
from pathlib import Path

WIKI_TITLE = re.compile(r"^ ?= [^=].* = ?$")          # ` = Homarus gammarus = `: a new article
WIKI_HEADING = re.compile(r"^ ?= .* = ?$")             # ` = = Description = = `: a section, not text
WIKI_ESCAPES = {" @-@ ": "-", " @,@ ": ",", " @.@ ": "."}  # WikiText splits 1,000 into `1 @,@ 000`
SENTENCE_END = re.compile(r"""([.!?]["')\]]*)\s+(?=["'(\[]?[A-Z0-9])""")
ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "no", "jr", "sr", "prof", "gen", "col", "lt", "mt"}


def read_documents(paths: str | Path | list[str | Path], min_words: int = 0) -> list[list[str]]:
    """Every document of every file, each a list of sentences. Empty documents are dropped. In files
    without WikiText headings, blank-line blocks are gathered into documents of at least `min_words` words."""
    return [document for documents in read_documents_by_file(paths, min_words) for document in documents]


def read_documents_by_file(paths: str | Path | list[str | Path], min_words: int = 0) -> list[list[list[str]]]:
    """As `read_documents`, but one list of documents per file (NSP draws NotNext text from the same file)."""
    paths = [paths] if isinstance(paths, (str, Path)) else paths
    files = []
    for path in paths:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"corpus file {path} does not exist; pass plain-text files (UTF-8), "
                                    "for example ../shared/data/wikitext-2/valid.txt.")
        text = path.read_text(encoding="utf-8-sig")
        files.append([sentences for doc in split_documents(text, min_words) if (sentences := split_sentences(doc))])
    if not any(files):
        raise ValueError(f"no text found in {', '.join(map(str, paths))}: the files are empty.")
    return files


def split_documents(text: str, min_words: int = 0) -> list[str]:
    """A text -> its documents (each a string whose paragraphs are separated by newlines)."""
    lines = text.replace("\r\n", "\n").split("\n")
    if not any(WIKI_TITLE.match(line) for line in lines):
        blocks = [block for block in re.split(r"\n\s*\n", text.replace("\r\n", "\n")) if block.strip()]
        return gather_blocks(blocks, min_words)
    documents, current = [], []
    for line in lines:
        if WIKI_TITLE.match(line):
            documents.append("\n".join(current))
            current = []
        elif line.strip() and not WIKI_HEADING.match(line):
            current.append(clean_wikitext(line))
    documents.append("\n".join(current))
    return [doc for doc in documents if doc.strip()]


def gather_blocks(blocks: list[str], min_words: int) -> list[str]:
    """Consecutive blocks joined until each document has at least `min_words` words (the last may have fewer)."""
    documents, current, words = [], [], 0
    for block in blocks:
        current.append(block)
        words += len(block.split())
        if words >= min_words:
            documents.append("\n".join(current))
            current, words = [], 0
    if current:
        documents.append("\n".join(current))
    return documents


def clean_wikitext(line: str) -> str:
    for escaped, plain in WIKI_ESCAPES.items():
        line = line.replace(escaped, plain)
    return line.strip()


def split_sentences(document: str) -> list[str]:
    """Cut a document into sentences. Good enough for English prose; a mistake only makes a segment longer."""
    text = " ".join(document.split())  # hard-wrapped lines (Gutenberg, verse) become one line
    sentences, start = [], 0
    for end in SENTENCE_END.finditer(text):
        words = text[start:end.end(1)].split()
        last_word = words[-1].lower().rstrip(".") if words else ""
        if last_word in ABBREVIATIONS or len(last_word) == 1:  # `Mr. Darcy`, `H. americanus`: not an end
            continue
        sentences.append(text[start:end.end(1)])
        start = end.end()
    if text[start:].strip():
        sentences.append(text[start:].strip())
    return sentences
