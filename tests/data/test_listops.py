"""ListOps (LRA): the evaluator, the generator's distribution and labels, the TSV reader."""

import numpy as np
import pytest
import torch

from s4op_kernels import data
from s4op_kernels.data import listops
from s4op_kernels.data.base import PAD, DataFormatError

# short sequences so a fixture takes milliseconds; the LRA defaults are exercised separately
SMALL = dict(max_depth=5, max_args=5, min_length=20, max_length=120)


@pytest.fixture(scope="module")
def small_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("listops")
    return data.generate("listops", root, train=20, val=5, test=5, seed=0, **SMALL)


def _structure(tokens):
    """(operator nesting depth, argument counts) of a token list, parsed here independently of the module."""
    depth, deepest, counts = 0, 0, []
    stack = []
    for t in tokens:
        if t.startswith("["):
            depth += 1
            deepest = max(deepest, depth)
            if stack:
                stack[-1] += 1
            stack.append(0)
        elif t == "]":
            depth -= 1
            counts.append(stack.pop())
        elif stack:
            stack[-1] += 1
    return deepest, counts


# --------------------------------------------------------------------------------------------- evaluator

@pytest.mark.parametrize("expr, value", [
    ("7", 7),
    ("[MAX 2 9 ]", 9),
    ("( ( ( [MAX 2 ) 9 ) ] )", 9),  # LRA's printed form of the same expression
    ("[MIN 4 7 ]", 4),
    ("[MED 3 1 2 ]", 2),
    ("[MED 1 2 3 4 ]", 2),  # int(numpy.median) = int(2.5)
    ("[MED 9 0 ]", 4),  # int(4.5)
    ("[SM 5 7 9 ]", 1),  # 21 mod 10
    ("[SM 0 0 ]", 0),
    ("[MAX 2 9 [MIN 4 7 ] 0 ]", 9),
    ("[SM [MAX 9 1 ] [MIN 8 3 ] ]", 2),  # (9 + 3) mod 10
    ("[MIN [MED 8 8 1 ] [SM 6 [MAX 1 5 ] ] 9 ]", 1),  # min(8, 11 mod 10, 9)
    ("( ( ( ( [MIN 4 ) ( ( ( [SM 9 ) 8 ) ] ) ) 5 ) ] )", 4),  # min(4, 17 mod 10, 5)
])
def test_evaluate_known_values(expr, value):
    assert listops.evaluate(expr) == value


@pytest.mark.parametrize("expr", ["[MAX 2 9", "]", "[MAX ]", "2 3", "[FOO 1 2 ]", "[MIN 1 12 ]", ""])
def test_evaluate_rejects_malformed(expr):
    with pytest.raises(ValueError):
        listops.evaluate(expr)


def test_to_string_is_lra_format():
    assert listops.to_string(("[MAX", [2, 9])) == "( ( ( [MAX 2 ) 9 ) ] )"
    assert listops.to_string(("[MIN", [("[SM", [9, 8]), 5])) == "( ( ( [MIN ( ( ( [SM 9 ) 8 ) ] ) ) 5 ) ] )"
    assert listops.tokenize("( ( ( [MAX 2 ) 9 ) ] )") == ["[MAX", "2", "9", "]"]


# --------------------------------------------------------------------------------------------- generator

@pytest.mark.parametrize("seed", [0, 1])
def test_generated_labels_and_distribution(seed):
    ex = listops.generate_examples(300, seed, **SMALL)
    texts = [t for t, _ in ex]
    assert len(set(texts)) == len(texts)
    seen_ops = set()
    for text, value in ex:
        assert value == listops.evaluate(text), text  # the tree's value equals the string's value
        tokens = listops.tokenize(text)
        assert SMALL["min_length"] < len(tokens) < SMALL["max_length"]
        deepest, counts = _structure(tokens)
        assert deepest <= SMALL["max_depth"] - 1  # digits may sit at max_depth, operators above it
        assert all(2 <= c <= SMALL["max_args"] for c in counts)
        seen_ops.update(t for t in tokens if t.startswith("["))
    assert seen_ops == set(listops.OPERATORS)
    assert len({v for _, v in ex}) >= 8  # most of the 10 classes occur


def test_lra_default_lengths():
    ex = listops.generate_examples(4, seed=5)  # max_depth 10, max_args 10, 500 < length < 2000
    for text, value in ex:
        assert 500 < len(listops.tokenize(text)) < 2000
        assert listops.evaluate(text) == value


def test_generator_rejects_impossible_settings():
    with pytest.raises(ValueError, match="min_length"):
        listops.generate_examples(1, 0, max_depth=2, max_args=3, min_length=50, max_length=100)
    with pytest.raises(ValueError, match="max_args"):
        listops.generate_examples(1, 0, max_args=1)
    with pytest.raises(RuntimeError, match="unique"):  # only 10 one-digit expressions exist at depth 1
        listops.generate_examples(11, 0, max_depth=1, min_length=0, max_length=5, max_attempts_per_example=1000)


def test_generate_files_reproducible_and_unique(tmp_path, small_root):
    again = listops.generate(tmp_path / "again", 20, 5, 5, seed=0, **SMALL)
    other = listops.generate(tmp_path / "other", 20, 5, 5, seed=1, **SMALL)
    all_sources = []
    for split, n in (("train", 20), ("val", 5), ("test", 5)):
        text = (small_root / f"basic_{split}.tsv").read_text()
        assert text == (again / f"basic_{split}.tsv").read_text()
        lines = text.splitlines()
        assert lines[0] == "Source\tTarget" and len(lines) == n + 1
        all_sources += [line.split("\t")[0] for line in lines[1:]]
    assert len(set(all_sources)) == 30  # unique across the three splits
    assert (small_root / "basic_train.tsv").read_text() != (other / "basic_train.tsv").read_text()


# --------------------------------------------------------------------------------------------- reader

def test_load_round_trip(small_root):
    inv = {i: t for t, i in listops.TOKEN_TO_INDEX.items()}
    for split, n in (("train", 20), ("val", 5), ("test", 5)):
        ds = data.load("listops", small_root, split)
        rows = (small_root / f"basic_{split}.tsv").read_text().splitlines()[1:]
        assert len(ds) == n and ds.vocab_size == len(listops.VOCAB) == 18 and ds.num_classes == 10
        assert ds.x.dtype == torch.int16 and ds.x.shape == (n, ds.seq_len)  # stored narrow
        assert ds[0][0].dtype == torch.int64  # handed out as int64
        assert ds.seq_len == int(ds.lengths.max())
        for i, row in enumerate(rows):
            source, target = row.split("\t")
            L = int(ds.lengths[i])
            decoded = [inv[int(t)] for t in ds.x[i, :L]]
            assert decoded == listops.tokenize(source) + ["<eos>"]
            assert (ds.x[i, L:] == PAD).all()
            assert int(ds.y[i]) == int(target) == listops.evaluate(source)


def test_load_max_len_and_truncate(small_root):
    ds = listops.load(small_root, "train", max_len=200)
    assert ds.seq_len == 200 and ds.x.shape == (20, 200)
    natural = listops.load(small_root, "train")
    cut = natural.seq_len - 5
    with pytest.raises(ValueError, match="max_len"):
        listops.load(small_root, "train", max_len=cut)
    t = listops.load(small_root, "train", max_len=cut, truncate=True)
    assert t.seq_len == cut and int(t.lengths.max()) == cut
    longest = int(natural.lengths.argmax())
    assert int(t.x[longest, cut - 1]) == listops.EOS  # the end marker survives truncation
    assert torch.equal(t.x[longest, :cut - 1], natural.x[longest, :cut - 1])
    no_eos = listops.load(small_root, "train", append_eos=False)
    assert torch.equal(no_eos.lengths, natural.lengths - 1)
    assert not (no_eos.x == listops.EOS).any()


def _write(path, text):
    path.mkdir(parents=True, exist_ok=True)
    (path / "basic_train.tsv").write_text(text)
    return path


@pytest.mark.parametrize("text, line, match", [
    ("( [MAX 1 2 ] )\t2\n", 1, "header"),
    ("Source\tTarget\n( [MAX 1 2 ] )\t2\n( [MIN 1 2 ] )\n", 3, "2 tab-separated columns"),
    ("Source\tTarget\n( [MAX 1 2 ] )\t2\textra\n", 2, "2 tab-separated columns"),
    ("Source\tTarget\n( [MAX 1 2 ] )\ttwo\n", 2, "not an integer"),
    ("Source\tTarget\n( [MAX 1 2 ] )\t2\n( [MAX 1 2 ] )\t10\n", 3, "outside 0..9"),
    ("Source\tTarget\n( ( ) )\t3\n", 2, "empty"),
    ("Source\tTarget\n( [MAX 1 2 ] )\t2\n( [FIRST 1 2 ] )\t1\n", 3, "unknown token"),
])
def test_malformed_files_name_file_and_line(tmp_path, text, line, match):
    root = _write(tmp_path / "bad", text)
    with pytest.raises(DataFormatError, match=match) as err:
        listops.load(root, "train")
    assert err.value.line == line
    assert err.value.path == str(root / "basic_train.tsv")
    assert f"basic_train.tsv, line {line}" in str(err.value)


@pytest.mark.parametrize("bad_line, n_lines", [(1, 3), (2, 3), (700, 1000)])
def test_non_utf8_file_names_file_and_line(tmp_path, bad_line, n_lines):
    # the decoder reads ahead in 8 kB chunks: the error must still name the line of the bad bytes
    lines = ["Source\tTarget"] + ["( [MAX 1 2 ] )\t2"] * (n_lines - 1)
    lines[bad_line - 1] = lines[bad_line - 1][:3] + "@" + lines[bad_line - 1][3:]
    root = tmp_path / "latin1"
    root.mkdir()
    path = root / "basic_train.tsv"
    path.write_bytes("\n".join(lines).encode().replace(b"@", b"\xff") + b"\n")
    with pytest.raises(DataFormatError, match=r"bytes b'\\xff' \(byte \d+ of the line\) are not valid UTF-8; the file "
                                              r"must be UTF-8") as err:
        listops.load(root, "train")
    assert err.value.line == bad_line and err.value.path == str(path)
    assert f"basic_train.tsv, line {bad_line}:" in str(err.value)


def test_unknown_tokens_can_map_to_unk(tmp_path):
    root = _write(tmp_path / "unk", "Source\tTarget\n( [FIRST 1 2 ] )\t1\n")
    ds = listops.load(root, "train", unknown="unk")
    assert ds.x[0, :5].tolist() == [listops.UNK, listops.TOKEN_TO_INDEX["1"], listops.TOKEN_TO_INDEX["2"],
                                    listops.TOKEN_TO_INDEX["]"], listops.EOS]


def test_missing_file_names_path_and_layout(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        data.load("listops", tmp_path, "val")
    msg = str(err.value)
    assert str(tmp_path / "basic_val.tsv") in msg and "basic_train.tsv" in msg


def test_vocabulary_is_fixed():
    assert listops.VOCAB[:3] == ("<pad>", "<unk>", "<eos>") and listops.TOKEN_TO_INDEX["<pad>"] == PAD
    assert set(listops.VOCAB[3:]) == set(listops.OPERATORS) | {"]"} | {str(d) for d in range(10)}
    assert len(np.unique(list(listops.TOKEN_TO_INDEX.values()))) == len(listops.VOCAB)
