"""ListOps (Long Range Arena): nested list operations on the digits 0-9, 10 classes.

On-disk format (the LRA release's ``listops-1000`` folder, and what :func:`generate` writes)::

    <root>/basic_train.tsv
    <root>/basic_val.tsv
    <root>/basic_test.tsv

Each file is tab-separated with the header ``Source\\tTarget``; ``Source`` is an expression such as
``( ( ( [MAX 2 ) 9 ) ] )`` and ``Target`` its value (an integer 0..9). The parentheses come from the
LRA generator printing its binary tuple tree; they carry no information and the tokenizer drops them,
as LRA's and the reference S4's tokenizers do. The operators are

    [MIN  minimum            [MAX  maximum
    [MED  int(numpy.median)  [SM   sum modulo 10

each closed by ``]``.

Generator (the LRA distribution, re-implemented): a tree of depth at most ``max_depth`` whose nodes
below the maximum depth are an operator with probability 0.25 (otherwise a digit), an operator having
2..``max_args`` arguments; a tree is kept when ``min_length < length < max_length`` counted in tokens
without parentheses, and only unique expressions are kept, over all three splits together.

Tokens (fixed vocabulary, so the three splits agree without scanning any data):
index 0 ``<pad>``, 1 ``<unk>``, 2 ``<eos>``, then ``[MIN [MAX [MED [SM ]`` and the digits ``0``..``9``
(18 entries, the size the reference S4 reports for this task).
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Iterable, List, Optional, Sequence, Tuple, Union

import numpy as np
import torch

from s4op_kernels.data.base import PAD, DataFormatError, TaskDataset, TaskInfo, open_utf8

MIN, MAX, MED, SUM_MOD, END = "[MIN", "[MAX", "[MED", "[SM", "]"
OPERATORS = (MIN, MAX, MED, SUM_MOD)
NUM_CLASSES = 10
OPERATOR_PROB = 0.25  # probability that a node above the maximum depth is an operator (LRA's VALUE_P)

PAD_TOKEN, UNK_TOKEN, EOS_TOKEN = "<pad>", "<unk>", "<eos>"
VOCAB: Tuple[str, ...] = (PAD_TOKEN, UNK_TOKEN, EOS_TOKEN) + OPERATORS + (END,) + tuple(str(d) for d in range(10))
TOKEN_TO_INDEX = {tok: i for i, tok in enumerate(VOCAB)}
UNK, EOS = TOKEN_TO_INDEX[UNK_TOKEN], TOKEN_TO_INDEX[EOS_TOKEN]
assert TOKEN_TO_INDEX[PAD_TOKEN] == PAD

SPLITS = ("train", "val", "test")
HEADER = ("Source", "Target")

# A generated tree: a digit, or (operator, [arguments]).
Tree = Union[int, Tuple[str, list]]


# ---------------------------------------------------------------------------------------------------
# Evaluation of expression strings (the specification of the labels; independent of the generator)
# ---------------------------------------------------------------------------------------------------

def tokenize(expression: str) -> List[str]:
    """Split an LRA ListOps expression into its tokens, dropping the parentheses.

    ``"( ( ( [MAX 2 ) 9 ) ] )"`` -> ``["[MAX", "2", "9", "]"]``.
    """
    return expression.replace("(", " ").replace(")", " ").split()


def _apply(op: str, args: Sequence[int]) -> int:
    if op == MIN:
        return int(min(args))
    if op == MAX:
        return int(max(args))
    if op == MED:
        return int(np.median(args))
    if op == SUM_MOD:
        return int(sum(args)) % 10
    raise ValueError(f"unknown operator {op!r}")


def evaluate(expression: Union[str, Sequence[str]]) -> int:
    """Value of a ListOps expression (a string in LRA format, or its token list).

    Operators take the values of their arguments: ``MIN``, ``MAX``, ``MED`` = ``int(numpy.median)``
    (the mean of the two middle values, truncated, for an even count), ``SM`` = sum modulo 10.
    Raises ``ValueError`` for an unknown token, an operator without arguments, an unbalanced ``]``,
    an unclosed operator, or more than one top-level value.
    """
    tokens = tokenize(expression) if isinstance(expression, str) else list(expression)
    # one frame per open operator: [operator, argument values]; the bottom frame collects top-level values
    stack: List[Tuple[Optional[str], List[int]]] = [(None, [])]
    for pos, tok in enumerate(tokens):
        if tok in OPERATORS:
            stack.append((tok, []))
        elif tok == END:
            if len(stack) == 1:
                raise ValueError(f"token {pos}: ']' closes no operator")
            op, args = stack.pop()
            if not args:
                raise ValueError(f"token {pos}: operator {op} has no arguments")
            stack[-1][1].append(_apply(op, args))
        elif len(tok) == 1 and tok.isdigit():
            stack[-1][1].append(int(tok))
        else:
            raise ValueError(f"token {pos}: unknown token {tok!r}")
    if len(stack) != 1:
        raise ValueError(f"{len(stack) - 1} operator(s) not closed by ']'")
    values = stack[0][1]
    if len(values) != 1:
        raise ValueError(f"expected one top-level value, got {len(values)}")
    return values[0]


# ---------------------------------------------------------------------------------------------------
# Generator
# ---------------------------------------------------------------------------------------------------

class _TooLong(Exception):
    """Raised inside the recursion as soon as a tree is known to reach ``max_length`` tokens."""


def _grow(rng: random.Random, depth: int, max_depth: int, max_args: int, budget: List[int]) -> Tree:
    # budget[0] counts the tokens still allowed; stopping as soon as it is exhausted only discards
    # trees the length filter would reject anyway, so the kept trees follow the same distribution.
    if depth < max_depth and rng.random() < OPERATOR_PROB:
        budget[0] -= 2  # the operator token and its closing ']'
        if budget[0] <= 0:
            raise _TooLong
        n_args = rng.randint(2, max_args)
        args = [_grow(rng, depth + 1, max_depth, max_args, budget) for _ in range(n_args)]
        return (rng.choice(OPERATORS), args)
    budget[0] -= 1
    if budget[0] <= 0:
        raise _TooLong
    return rng.randrange(10)


def _tree_value(tree: Tree) -> int:
    """Value of a generated tree, computed on the tree (integer arithmetic, no parsing)."""
    if isinstance(tree, int):
        return tree
    op, args = tree
    vals = [_tree_value(a) for a in args]
    if op == MIN:
        return min(vals)
    if op == MAX:
        return max(vals)
    if op == SUM_MOD:
        return sum(vals) % 10
    s, n = sorted(vals), len(vals)  # MED: lower-middle / mean of the two middle values, floored
    return s[n // 2] if n % 2 else (s[n // 2 - 1] + s[n // 2]) // 2


def _tree_length(tree: Tree) -> int:
    if isinstance(tree, int):
        return 1
    return 2 + sum(_tree_length(a) for a in tree[1])


def to_string(tree: Tree) -> str:
    """LRA's printed form: the operator and its arguments folded into a left-nested binary tree, each pair
    in parentheses, so ``(MAX, [2, 9])`` prints as ``( ( ( [MAX 2 ) 9 ) ] )``."""
    if isinstance(tree, int):
        return str(tree)
    op, args = tree
    s = op
    for a in args:
        s = f"( {s} {to_string(a)} )"
    return f"( {s} {END} )"


def _max_tree_length(max_depth: int, max_args: int) -> int:
    length = 1  # a node at the maximum depth is a digit
    for _ in range(max_depth - 1):
        length = 2 + max_args * length
    return length


def generate_examples(n: int, seed: int, *, max_depth: int = 10, max_args: int = 10, min_length: int = 500,
                      max_length: int = 2000, max_attempts_per_example: int = 200_000) -> List[Tuple[str, int]]:
    """``n`` unique ``(expression, value)`` pairs from the LRA ListOps distribution.

    Lengths count tokens without parentheses and satisfy ``min_length < length < max_length``.
    The value is computed on the generated tree (see :func:`evaluate` for the string-level definition).
    Raises ``ValueError`` when no tree can satisfy the length bounds and ``RuntimeError`` when
    ``max_attempts_per_example`` consecutive draws bring no new unique example (the settings admit too
    few distinct expressions for ``n``).
    """
    if max_depth < 1:
        raise ValueError(f"max_depth must be >= 1, got {max_depth}")
    if max_args < 2:
        raise ValueError(f"max_args must be >= 2 (an operator takes 2..max_args arguments), got {max_args}")
    if min_length < 0 or max_length <= min_length + 1:
        raise ValueError(f"need 0 <= min_length and min_length + 1 < max_length, got {min_length}, {max_length}")
    longest = _max_tree_length(max_depth, max_args)
    if longest <= min_length:
        raise ValueError(f"trees with max_depth={max_depth}, max_args={max_args} have at most {longest} tokens; "
                         f"min_length={min_length} leaves none")
    rng = random.Random(seed)
    examples: dict = {}  # expression -> value; insertion order is the (seeded) draw order
    since_new = 0
    while len(examples) < n:
        since_new += 1
        if since_new > max_attempts_per_example:
            raise RuntimeError(f"{max_attempts_per_example} draws without a new unique expression after "
                               f"{len(examples)} of {n}; widen max_depth/max_args/length bounds or ask for fewer")
        try:
            tree = _grow(rng, 1, max_depth, max_args, [max_length])
        except _TooLong:
            continue
        if _tree_length(tree) <= min_length:
            continue
        text = to_string(tree)
        if text not in examples:
            examples[text] = _tree_value(tree)
            since_new = 0
    return list(examples.items())


def _write_tsv(path: Path, rows: Iterable[Tuple[str, int]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        f.write("\t".join(HEADER) + "\n")
        for text, value in rows:
            f.write(f"{text}\t{value}\n")


def generate(out, train: int, val: int, test: int, seed: int = 0, *, max_depth: int = 10, max_args: int = 10,
             min_length: int = 500, max_length: int = 2000) -> Path:
    """Write ``basic_{train,val,test}.tsv`` (LRA format) with ``train``/``val``/``test`` unique expressions.

    Defaults are LRA's (96k/2k/2k in the release; depth <= 10, <= 10 arguments, 500 < length < 2000);
    smaller ``max_depth``/``max_args``/``min_length``/``max_length`` give short sequences for tests and
    quick CPU runs. The same ``seed`` and options give the same files. Returns ``out``.
    """
    out = Path(out)
    examples = generate_examples(train + val + test, seed, max_depth=max_depth, max_args=max_args,
                                 min_length=min_length, max_length=max_length)
    out.mkdir(parents=True, exist_ok=True)
    bounds = {"train": (0, train), "val": (train, train + val), "test": (train + val, train + val + test)}
    for split, (a, b) in bounds.items():
        _write_tsv(out / f"basic_{split}.tsv", examples[a:b])
    return out


# ---------------------------------------------------------------------------------------------------
# Reader
# ---------------------------------------------------------------------------------------------------

def read_tsv(path) -> List[Tuple[List[str], int, int]]:
    """Parse one LRA ListOps TSV file into ``(tokens, target, line_number)`` rows (tokens without parentheses).

    Raises :class:`DataFormatError` naming the file and line for a missing/odd header, a row without
    exactly two tab-separated columns, an empty expression, a target that is not an integer in 0..9, or
    bytes that are not UTF-8.
    """
    path = Path(path)
    rows = []
    with open_utf8(path) as f:
        header = f.readline()
        if header.rstrip("\r\n").split("\t") != list(HEADER):
            raise DataFormatError(path, f"expected the header 'Source<TAB>Target', got {header.rstrip()[:60]!r}",
                                  line=1)
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue  # a trailing blank line is not a row
            cols = line.split("\t")
            if len(cols) != 2:
                raise DataFormatError(path, f"expected 2 tab-separated columns (Source, Target), got {len(cols)}",
                                      line=lineno)
            source, target = cols
            try:
                y = int(target)
            except ValueError:
                raise DataFormatError(path, f"Target {target!r} is not an integer", line=lineno) from None
            if not 0 <= y < NUM_CLASSES:
                raise DataFormatError(path, f"Target {y} is outside 0..{NUM_CLASSES - 1}", line=lineno)
            tokens = tokenize(source)
            if not tokens:
                raise DataFormatError(path, "empty Source expression", line=lineno)
            rows.append((tokens, y, lineno))
    return rows


def load(root, split: str = "train", max_len: Optional[int] = None, *, truncate: bool = False,
         append_eos: bool = True, unknown: str = "error") -> TaskDataset:
    """Load ``<root>/basic_{split}.tsv`` as a token :class:`TaskDataset`.

    x: (N, seq_len) token indices (stored as int16, ``ds[i]`` gives int64) from the fixed vocabulary :data:`VOCAB` (0 = padding), each
    sequence followed by ``<eos>`` when ``append_eos`` (the reference S4's default). y: (N,) int64 in 0..9.
    lengths: (N,) valid tokens per row.

    ``seq_len`` is ``max_len`` when given, else the longest sequence of this split (so splits loaded
    without ``max_len`` may differ in length; pass the same ``max_len``, e.g. 2048 as the reference S4,
    to make them agree). A sequence longer than ``max_len`` raises ``ValueError`` unless ``truncate``, which
    keeps its first tokens (and the ``<eos>``). ``unknown="error"`` raises :class:`DataFormatError` on a
    token outside the vocabulary; ``unknown="unk"`` maps it to ``<unk>``.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    if unknown not in ("error", "unk"):
        raise ValueError(f"unknown must be 'error' or 'unk', got {unknown!r}")
    if max_len is not None and max_len < 1 + int(append_eos):
        raise ValueError(f"max_len must be >= {1 + int(append_eos)}, got {max_len}")
    root = Path(root)
    path = root / f"basic_{split}.tsv"
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found. ListOps expects the LRA layout <root>/basic_train.tsv, basic_val.tsv, "
            f"basic_test.tsv (the release's listops-1000 folder), or files written by "
            f"`s4op_kernels.data.generate('listops', root, ...)`.")

    rows = read_tsv(path)
    encoded = []
    for tokens, _, lineno in rows:
        ids = [TOKEN_TO_INDEX.get(t, UNK) for t in tokens]
        if unknown == "error" and UNK in ids:
            bad = tokens[ids.index(UNK)]
            raise DataFormatError(path, f"unknown token {bad!r}; expected one of {list(VOCAB[3:])} or parentheses",
                                  line=lineno)
        if max_len is not None and len(ids) + int(append_eos) > max_len:
            if not truncate:
                raise ValueError(f"{path}, line {lineno}: {len(ids) + int(append_eos)} tokens exceed "
                                 f"max_len={max_len}; pass truncate=True or a larger max_len")
            ids = ids[:max_len - int(append_eos)]
        if append_eos:
            ids.append(EOS)
        encoded.append(ids)

    lengths = np.array([len(ids) for ids in encoded], dtype=np.int64)
    seq_len = max_len if max_len is not None else int(lengths.max(initial=1))
    x = np.full((len(encoded), seq_len), PAD, dtype=np.int16)  # 18 tokens; ds[i] gives int64
    for i, ids in enumerate(encoded):
        x[i, :len(ids)] = ids
    y = np.array([r[1] for r in rows], dtype=np.int64)
    info = TaskInfo(task="listops", num_classes=NUM_CLASSES, seq_len=seq_len, vocab_size=len(VOCAB),
                    class_names=tuple(str(d) for d in range(NUM_CLASSES)))
    return TaskDataset(torch.from_numpy(x), torch.from_numpy(y), info, lengths=torch.from_numpy(lengths), split=split)


__all__ = ["VOCAB", "OPERATORS", "tokenize", "evaluate", "to_string", "generate_examples", "generate", "read_tsv",
           "load"]
