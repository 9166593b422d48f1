"""Extractive QA data: a question, a context, and the answers as character spans of the context.

Lecture 2.2 (outputs: copying a span out of the input); the extractive QA notebook (planned). Reads the three
formats of the shared data into one `QAExample` (the fields of Hugging Face `datasets`' "squad": id, title,
context, question, answers with `answer_start`):
- SQuAD v1.1 JSON (XQuAD en and zh): data -> articles {title, paragraphs -> {context, qas -> {id, question,
  answers -> [{text, answer_start}]}}};
- DRCD: the same layout (version "1.3"), with ids on articles and paragraphs and several answers per question;
- NTU ML 2023 homework 7: {questions: [{id, paragraph_id, question_text, answer_text, answer_start,
  answer_end}], paragraphs: [str]}, with `answer_end` INCLUSIVE (the answer is paragraph[start:end + 1]);
  the test file has null answers.
An annotated answer whose text is not what its context holds at its offset is left out of `answers` and
recorded in `QAData.problems` (the example stays): a wrong offset would teach the model the wrong span.
"""
from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import torch

from ...checkpoint import write_text_atomically

SQUAD_FORMAT = ("SQuAD JSON: {\"data\": [{\"title\", \"paragraphs\": [{\"context\", \"qas\": [{\"id\", \"question\", "
                "\"answers\": [{\"text\", \"answer_start\"}]}]}]}]}")
HW7_FORMAT = ("NTU ML 2023 homework 7 JSON: {\"questions\": [{\"id\", \"paragraph_id\", \"question_text\", "
              "\"answer_text\", \"answer_start\", \"answer_end\"}], \"paragraphs\": [str]}")
HW7_SUBMISSION_HEADER = ("ID", "Answer")


@dataclass(frozen=True)
class Answer:
    """An answer as the annotators marked it: its text and the character where it starts in the context."""

    text: str
    start: int

    @property
    def end(self) -> int:
        """One past the last character: context[start:end] == text."""
        return self.start + len(self.text)


@dataclass
class QAExample:
    """One question about one context; `answers` is empty for unlabeled data (a homework's test file)."""

    id: str
    question: str
    context: str
    answers: list[Answer]
    title: str | None = None


@dataclass(frozen=True)
class AnswerProblem:
    """An annotated answer that does not match its context: what was annotated and what the context holds."""

    example_id: str
    text: str
    start: int
    found: str  # context[start:start + len(text)]

    def __str__(self) -> str:
        return f"question {self.example_id}: answer {self.text!r} at {self.start}, but the context has {self.found!r}"


@dataclass
class QAData:
    """The examples of one file, the answers that did not match their context, and the file they came from."""

    examples: list[QAExample]
    problems: list[AnswerProblem] = field(default_factory=list)
    path: Path | None = None

    def __len__(self) -> int:
        return len(self.examples)

    def __iter__(self) -> Iterator[QAExample]:
        return iter(self.examples)

    def __getitem__(self, index: int) -> QAExample:
        return self.examples[index]

    @property
    def num_paragraphs(self) -> int:
        return len({example.context for example in self.examples})

    def summary(self) -> str:
        """One line for a log: how many questions and paragraphs, and how many answers did not match."""
        name = self.path.name if self.path is not None else "data"
        line = f"{name}: {len(self):,} questions on {self.num_paragraphs:,} paragraphs"
        if not any(example.answers for example in self.examples):
            line += " (unlabeled)"
        if self.problems:
            line += f"; {len(self.problems):,} annotated answers do not match their context (left out), e.g. " \
                    f"{self.problems[0]}"
        return line


@dataclass
class TitleSplit:
    """Examples split by article: no article, hence no paragraph, is on both sides."""

    train: list[QAExample]
    test: list[QAExample]
    train_titles: list[str]
    test_titles: list[str]


def read_squad(path: str | Path) -> QAData:
    """A SQuAD v1.1 JSON file (SQuAD, XQuAD): every question of every paragraph of every article."""
    path = Path(path)
    data = _load_json(path, SQUAD_FORMAT)
    articles = _field(data, "data", list, path, SQUAD_FORMAT, "the file")
    examples, problems = [], []
    for a, article in enumerate(articles):
        where = f"article {a}"
        title = article.get("title") if isinstance(article, dict) else None
        for p, paragraph in enumerate(_field(article, "paragraphs", list, path, SQUAD_FORMAT, where)):
            context = _field(paragraph, "context", str, path, SQUAD_FORMAT, f"{where}, paragraph {p}")
            for q, qa in enumerate(_field(paragraph, "qas", list, path, SQUAD_FORMAT, f"{where}, paragraph {p}")):
                at = f"{where}, paragraph {p}, question {q}"
                question_id = str(_field(qa, "id", (str, int), path, SQUAD_FORMAT, at))
                answers = []
                for answer in _field(qa, "answers", list, path, SQUAD_FORMAT, at):
                    text = _field(answer, "text", str, path, SQUAD_FORMAT, f"{at}, an answer")
                    start = _field(answer, "answer_start", int, path, SQUAD_FORMAT, f"{at}, an answer")
                    _keep_if_matching(Answer(text, start), context, question_id, answers, problems)
                examples.append(QAExample(question_id, _field(qa, "question", str, path, SQUAD_FORMAT, at),
                                          context, answers, title))
    return QAData(examples, problems, path)


def read_drcd(path: str | Path) -> QAData:
    """A DRCD file (Delta Reading Comprehension Dataset): SQuAD's layout, several answers per question."""
    return read_squad(path)


def read_hw7(path: str | Path) -> QAData:
    """An NTU ML 2023 homework 7 file. `answer_end` is inclusive; in the test file the answers are null."""
    path = Path(path)
    data = _load_json(path, HW7_FORMAT)
    paragraphs = _field(data, "paragraphs", list, path, HW7_FORMAT, "the file")
    examples, problems = [], []
    for q, item in enumerate(_field(data, "questions", list, path, HW7_FORMAT, "the file")):
        at = f"question {q}"
        question_id = str(_field(item, "id", (int, str), path, HW7_FORMAT, at))
        paragraph_id = _field(item, "paragraph_id", int, path, HW7_FORMAT, at)
        if not 0 <= paragraph_id < len(paragraphs):
            raise ValueError(f"{path}: {at} has paragraph_id {paragraph_id}, but the file has {len(paragraphs)} "
                             f"paragraphs (ids 0..{len(paragraphs) - 1}); expected {HW7_FORMAT}")
        context = paragraphs[paragraph_id]
        answers = []
        if item.get("answer_text") is not None:
            text = _field(item, "answer_text", str, path, HW7_FORMAT, at)
            start = _field(item, "answer_start", int, path, HW7_FORMAT, at)
            end = _field(item, "answer_end", int, path, HW7_FORMAT, at)
            if end - start + 1 != len(text):  # the inclusive end must agree with the text's length
                problems.append(AnswerProblem(question_id, text, start, context[start:end + 1]))
            else:
                _keep_if_matching(Answer(text, start), context, question_id, answers, problems)
        question = _field(item, "question_text", str, path, HW7_FORMAT, at)
        examples.append(QAExample(question_id, question, context, answers, title=None))
    return QAData(examples, problems, path)


def write_hw7_submission(path: str | Path, predictions: dict[str, str] | Sequence[tuple[str, str]],
                         overwrite: bool = False) -> Path:
    """The homework's submission file: a CSV with the header `ID,Answer` and one row per question.

    predictions: {question id: answer text}, or (id, answer) pairs, in the order to write. Commas are deleted
    from the answers, as the homework's own code does ("answers in kaggle are processed in the same way").
    An existing file is kept unless overwrite=True: a submission is often the only copy of a long run's output.
    """
    path = Path(path)
    if path.exists() and not overwrite:
        raise FileExistsError(f"{path} already exists; pass overwrite=True to replace it, or choose another name")
    rows = list(predictions.items()) if isinstance(predictions, dict) else list(predictions)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")  # quotes the rare answer holding a quote or a line break
    writer.writerow(HW7_SUBMISSION_HEADER)
    writer.writerows((str(question_id), answer.replace(",", "")) for question_id, answer in rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomically(path, buffer.getvalue())
    return path


def read_hw7_submission(path: str | Path) -> dict[str, str]:
    """A submission file back as {question id: answer}."""
    path = Path(path)
    with open(path, encoding="utf-8", newline="") as file:
        rows = list(csv.reader(file))
    if not rows or tuple(rows[0]) != HW7_SUBMISSION_HEADER:
        raise ValueError(f"{path}: expected the header {','.join(HW7_SUBMISSION_HEADER)}, got "
                         f"{','.join(rows[0]) if rows else 'an empty file'}")
    return {question_id: answer for question_id, answer in rows[1:]}


def split_by_title(examples: Sequence[QAExample] | QAData, fraction: float,
                   generator: torch.Generator) -> TitleSplit:
    """A random `fraction` of the articles (titles) for training, the rest for testing.

    Splitting questions at random would put questions about one paragraph on both sides: the test would
    then measure memory of the paragraph, not reading. Titles keep their first-seen order on each side.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"fraction is the share of articles for training, between 0 and 1; got {fraction}")
    titles = list(dict.fromkeys(example.title for example in examples))
    if None in titles:
        raise ValueError("split_by_title needs every example's title; this data has examples without one "
                         "(homework files have no titles: split them by paragraph instead)")
    if len(titles) < 2:
        raise ValueError(f"split_by_title needs at least 2 articles, got {len(titles)}")
    num_train = min(max(round(fraction * len(titles)), 1), len(titles) - 1)
    chosen = set(torch.randperm(len(titles), generator=generator)[:num_train].tolist())
    train_titles = [title for i, title in enumerate(titles) if i in chosen]
    test_titles = [title for i, title in enumerate(titles) if i not in chosen]
    train_set = set(train_titles)
    return TitleSplit([example for example in examples if example.title in train_set],
                      [example for example in examples if example.title not in train_set], train_titles, test_titles)


def _keep_if_matching(answer: Answer, context: str, example_id: str, answers: list[Answer],
                      problems: list[AnswerProblem]) -> None:
    found = context[answer.start:answer.end] if answer.start >= 0 else ""
    if found == answer.text and answer.text:
        answers.append(answer)
    else:
        problems.append(AnswerProblem(example_id, answer.text, answer.start, found))


def _load_json(path: Path, expected: str):
    if not path.is_file():
        raise FileNotFoundError(f"no QA file at {path}; expected {expected}")
    try:
        return json.loads(path.read_text(encoding="utf-8-sig"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise ValueError(f"{path} is not UTF-8 JSON ({error}); expected {expected}") from error


def _field(record, name: str, kind, path: Path, expected: str, where: str):
    """record[name], checked to be of `kind`; otherwise an error naming the file, the place and the format."""
    if not isinstance(record, dict) or name not in record:
        raise ValueError(f"{path}: {where} has no field {name!r}; expected {expected}")
    value = record[name]
    if not isinstance(value, kind) or isinstance(value, bool):
        wanted = " or ".join(k.__name__ for k in kind) if isinstance(kind, tuple) else kind.__name__
        raise ValueError(f"{path}: {where} has {name!r} = {value!r:.60}, expected {wanted}; "
                         f"the format is {expected}")
    return value
