"""Task data from the files people actually have: GLUE SST-2, the cs224n minBERT SST-5/CFIMDB files, CoNLL-2003,
and a user's own CSV, TSV or JSON-lines table.

Lecture 2.1 (inputs: one sentence, or two joined by [SEP]) and 2.2 (outputs: one class, a class per token).
The counterpart is what `datasets` + the transformers example scripts (run_glue.py, run_ner.py) read; here each
format is a few lines of plain Python, so a student sees exactly what becomes a training example.

Every reader takes a path and checks the file as it goes: a missing file, bytes that are not UTF-8, a missing
header, a row with the wrong number of columns or a label that is not one raise `DataFormatError`, whose message
names the file, the line and the format that was expected. Texts are stripped of surrounding spaces (the SST
files end sentences with a space, the cs224n files start them with one; the tokenizer drops them anyway).
"""
from __future__ import annotations

import csv
import json
import re
from dataclasses import dataclass
from pathlib import Path

NER_TAG = re.compile(r"^(O|[BI]-\S+)$")  # CoNLL-2003 NER tags: O, or B-/I- and an entity type


class DataFormatError(ValueError):
    """A task file that is missing or not in its format; the message names the file, the line and the format."""

    def __init__(self, path: str | Path, line: int | None, problem: str, expected: str):
        where = f"{path}" if line is None else f"{path}, line {line}"
        super().__init__(f"{where}: {problem}. Expected {expected}.")
        self.path, self.line = Path(path), line


class UnknownLabelError(ValueError):
    """A label the classifier head has no output for."""


@dataclass
class TextExample:
    """One sentence (or a pair joined by [SEP]) and its label: an int class, a float for regression, a str
    class name, or None when the split is unlabeled (a test set)."""
    text: str
    pair: str | None = None
    label: int | float | str | None = None


@dataclass
class TaggedSentence:
    """Words and their BIO tags (None when unlabeled): one example of token classification."""
    words: list[str]
    tags: list[str] | None


# ----- reading lines, with the line numbers that errors need -----

def read_lines(path: str | Path, expected: str) -> list[str]:
    """The lines of a UTF-8 text file, without line ends. `expected` describes the format for error messages."""
    path = Path(path)
    if not path.is_file():
        problem = "is a folder, not a file" if path.is_dir() else "no such file"
        raise DataFormatError(path, None, problem, expected)
    data = path.read_bytes()
    try:
        text = data.decode("utf-8-sig")  # -sig: a byte-order mark some editors write is not part of the header
    except UnicodeDecodeError as error:
        line = data[:error.start].count(b"\n") + 1
        raise DataFormatError(path, line, f"byte {data[error.start]:#04x} is not UTF-8 text (was it saved as "
                              f"Latin-1 or Windows-1252? re-save it as UTF-8)", expected) from None
    lines = text.split("\n")  # not splitlines(): it would also cut at \x0b, \x1c or \u2028 inside a sentence
    if lines and lines[-1] == "":
        lines.pop()
    return [line[:-1] if line.endswith("\r") else line for line in lines]


def _header_columns(path: Path, lines: list[str], required: list[str], expected: str) -> list[str]:
    if not lines:
        raise DataFormatError(path, 1, "the file is empty", expected)
    header = lines[0].split("\t")
    missing = [name for name in required if name not in header]
    if missing:
        raise DataFormatError(path, 1, f"the header {header} has no column {' or '.join(map(repr, missing))} "
                              f"(is the header line missing?)", expected)
    return header


def _tsv_rows(path: Path, lines: list[str], header: list[str], expected: str):
    """(line number, {column: value}) for every row after the header; blank lines are skipped."""
    for number, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        cells = line.split("\t")
        if len(cells) != len(header):
            raise DataFormatError(path, number, f"{len(cells)} tab-separated columns where the header has "
                                  f"{len(header)} ({header})", expected)
        yield number, dict(zip(header, cells))


def _class_label(path: Path, number: int, value: str, expected: str) -> int:
    if not value.strip().isdigit():
        raise DataFormatError(path, number, f"the label {value!r} is not a class number", expected)
    return int(value)


# ----- the standard formats -----

SST2_FORMAT = ("GLUE SST-2 TSV: a header 'sentence<TAB>label' then one sentence and its label (0 or 1) per line, "
               "or the unlabeled test split 'index<TAB>sentence'")


def read_sst2(path: str | Path) -> list[TextExample]:
    """GLUE SST-2 (train.tsv, dev.tsv: sentence, label 0/1; test.tsv: index, sentence, unlabeled -> None)."""
    path = Path(path)
    lines = read_lines(path, SST2_FORMAT)
    header = _header_columns(path, lines, ["sentence"], SST2_FORMAT)
    examples = []
    for number, row in _tsv_rows(path, lines, header, SST2_FORMAT):
        label = row.get("label")
        if label is not None:
            label = _class_label(path, number, label, SST2_FORMAT)
            if label not in (0, 1):
                raise DataFormatError(path, number, f"the label {label} is neither 0 nor 1", SST2_FORMAT)
        examples.append(TextExample(row["sentence"].strip(), label=label))
    if not examples:
        raise DataFormatError(path, None, "no examples after the header", SST2_FORMAT)
    return examples


CS224N_FORMAT = ("the cs224n minBERT sentiment TSV (ids-sst-*.csv, ids-cfimdb-*.csv): a header "
                 "'<TAB>id<TAB>sentence<TAB>sentiment' then index, id, sentence and class number per line "
                 "(test-student files: header '0<TAB><TAB>id<TAB>sentence', no sentiment)")


def read_cs224n_sentiment(path: str | Path) -> list[TextExample]:
    """The SST-5 (classes 0-4) and CFIMDB (0/1) files of the cs224n minBERT project; test-student -> label None.

    They are tab-separated although named .csv, and sentences hold quote characters, so no CSV quoting applies
    (the project's own loader uses csv.QUOTE_NONE)."""
    path = Path(path)
    lines = read_lines(path, CS224N_FORMAT)
    header = _header_columns(path, lines, ["id", "sentence"], CS224N_FORMAT)
    examples = []
    for number, row in _tsv_rows(path, lines, header, CS224N_FORMAT):
        label = row.get("sentiment")
        if label is not None:
            label = _class_label(path, number, label, CS224N_FORMAT)
        examples.append(TextExample(row["sentence"].strip(), label=label))
    if not examples:
        raise DataFormatError(path, None, "no examples after the header", CS224N_FORMAT)
    return examples


CONLL_FORMAT = ("CoNLL-2003 columns: one 'word POS chunk NER-tag' line per word (at least the word and, last, "
                "a tag O, B-TYPE or I-TYPE), a blank line between sentences, '-DOCSTART-' lines between documents")


def read_conll2003(path: str | Path) -> list[TaggedSentence]:
    """CoNLL-2003 NER sentences, tags converted from the original IOB1 to BIO (IOB2); -DOCSTART- lines skipped.

    A file of words only (one column) gives tags None. The conversion leaves a BIO file as it is, so both kinds
    of CoNLL file read the same."""
    path = Path(path)
    lines = read_lines(path, CONLL_FORMAT)
    sentences, words, tags = [], [], []
    labeled = None  # decided by the first word line: every line must then agree

    def end_sentence():
        if words:
            sentences.append(TaggedSentence(list(words), iob1_to_bio(tags) if labeled else None))
            words.clear()
            tags.clear()

    for number, line in enumerate(lines, start=1):
        columns = line.split()
        if not columns or columns[0] == "-DOCSTART-":
            end_sentence()
            continue
        if labeled is None:
            labeled = len(columns) > 1
        if labeled != (len(columns) > 1):
            raise DataFormatError(path, number, f"{len(columns)} column(s) {columns}, where the file's first word "
                                  f"line had {'a tag' if labeled else 'only the word'}", CONLL_FORMAT)
        words.append(columns[0])
        if labeled:
            if not NER_TAG.match(columns[-1]):
                raise DataFormatError(path, number, f"the last column {columns[-1]!r} is not an NER tag",
                                      CONLL_FORMAT)
            tags.append(columns[-1])
    end_sentence()
    if not sentences:
        raise DataFormatError(path, None, "no sentences found", CONLL_FORMAT)
    return sentences


def iob1_to_bio(tags: list[str]) -> list[str]:
    """IOB1 (B- only between two adjacent entities of one type) -> BIO (every entity opens with B-).

    An I-X opens an entity unless the tag before it is B-X or I-X; then it becomes B-X."""
    bio = []
    for i, tag in enumerate(tags):
        if tag.startswith("I-"):
            before = tags[i - 1] if i > 0 else "O"
            if before == "O" or before[2:] != tag[2:]:
                tag = "B-" + tag[2:]
        bio.append(tag)
    return bio


# ----- a user's own table -----

TABLE_SUFFIXES = {".csv": "CSV", ".tsv": "TSV", ".jsonl": "JSON lines", ".json": "JSON lines"}


def read_table(path: str | Path, text_column: str, label_column: str | None = None,
               pair_column: str | None = None) -> list[TextExample]:
    """Examples from a CSV (quoted as Excel writes it), TSV (tabs, no quoting) or JSON-lines file (.jsonl or
    .json, one object per line), columns chosen by name. CSV/TSV labels that read as whole numbers become ints,
    other numbers floats, anything else stays a string (a class name); an empty label is None."""
    path = Path(path)
    kind = TABLE_SUFFIXES.get(path.suffix.lower())
    columns = [c for c in (text_column, pair_column, label_column) if c is not None]
    expected = (f"a table with a header naming the columns {columns}: CSV (.csv), TSV (.tsv) or JSON lines "
                f"(.jsonl, one object per line with those keys)")
    if kind is None:
        raise DataFormatError(path, None, f"the suffix {path.suffix!r} says nothing about the format",
                              expected + "; rename the file to .csv, .tsv or .jsonl")
    lines = read_lines(path, expected)
    rows = _json_rows(path, lines, expected) if kind == "JSON lines" else _delimited_rows(path, lines, kind, expected)
    examples = []
    for number, row in rows:
        missing = [c for c in columns if c not in row]
        if missing:
            raise DataFormatError(path, number, f"no column {' or '.join(map(repr, missing))} (it has "
                                  f"{sorted(row)})", expected)
        text = row[text_column]
        pair = row[pair_column] if pair_column is not None else None
        for name, value in ((text_column, text), (pair_column, pair)):
            if name is not None and not isinstance(value, str):
                raise DataFormatError(path, number, f"column {name!r} holds {value!r}, not a text", expected)
        label = row[label_column] if label_column is not None else None
        if isinstance(label, str):
            label = _parse_label(label)
        elif isinstance(label, bool) or not isinstance(label, (int, float, type(None))):
            label = json.dumps(label)  # true/false or a list: a class name
        examples.append(TextExample(text.strip(), pair.strip() if pair is not None else None, label))
    if not examples:
        raise DataFormatError(path, None, "no rows found", expected)
    return examples


def _delimited_rows(path: Path, lines: list[str], kind: str, expected: str):
    if not lines:
        raise DataFormatError(path, 1, "the file is empty", expected)
    if kind == "TSV":
        reader = csv.reader(lines, delimiter="\t", quoting=csv.QUOTE_NONE)
    else:  # line ends put back: a quoted cell may hold several lines
        reader = csv.reader(line + "\n" for line in lines)
    try:
        header = next(reader)
        for row in reader:
            number = reader.line_num  # counts the lines read so far: the last line of this row
            if not any(cell.strip() for cell in row):
                continue
            if len(row) != len(header):
                raise DataFormatError(path, number, f"{len(row)} {kind} columns where the header has {len(header)} "
                                      f"({header})", expected)
            yield number, dict(zip(header, row))
    except csv.Error as error:
        raise DataFormatError(path, reader.line_num, f"not readable as {kind} ({error})", expected) from None


def _json_rows(path: Path, lines: list[str], expected: str):
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            raise DataFormatError(path, number, f"not a JSON object ({error.msg})", expected) from None
        if not isinstance(row, dict):
            raise DataFormatError(path, number, f"a JSON {type(row).__name__}, not an object", expected)
        yield number, row


def _parse_label(value: str) -> int | float | str | None:
    value = value.strip()
    if not value:
        return None
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


# ----- labels -----

def is_regression(examples: list[TextExample]) -> bool:
    """The rule for a user's table: regression when every label is a number and not all of them are whole
    numbers (2.5 or 0.37 are scores; 0, 1, 2 or 1.0, 0.0 are classes)."""
    labels = [e.label for e in examples if e.label is not None]
    numeric = all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in labels)
    return bool(labels) and numeric and not all(float(x).is_integer() for x in labels)


def label_vocabulary(examples: list[TextExample], regression: bool | None = None) -> list | None:
    """The sorted labels of the training examples, the position of each being its class id; None for regression.

    regression=None applies the rule of `is_regression`; True or False is the user's choice. Whole-number floats
    (1.0) become ints, so they match labels read as 1 elsewhere. Numbers sort before class names."""
    if regression is None:
        regression = is_regression(examples)
    if regression:
        return None
    labels = {e.label for e in examples if e.label is not None}
    if not labels:
        raise ValueError("the examples have no labels (an unlabeled test split?); build the label list from the "
                         "training file")
    labels = {int(x) if isinstance(x, float) and x.is_integer() else x for x in labels}
    return sorted(labels, key=lambda x: (isinstance(x, str), x))


def label_id(label, label_to_id: dict, where: str = "") -> int:
    """The class id of `label`, or an error saying which label and which ones the head has outputs for.

    A checkpoint's config.json names its classes with strings ("0", "positive"), the readers give ints: a label
    missing from label_to_id is looked up again as its text, so 1 (or 1.0) finds the class "1"."""
    if isinstance(label, float) and label.is_integer():
        label = int(label)
    for key in (label, str(label)):
        if key in label_to_id:
            return label_to_id[key]
    known = sorted(label_to_id, key=label_to_id.get)  # in the order of the head's outputs
    raise UnknownLabelError(f"{where}the label {label!r} is not one of the {len(known)} labels the classifier head "
                            f"knows: {known}. Fine-tune a fresh head on data with this label, or map it to one of "
                            f"these")
