"""Hostile-input tally (issue 11): seeded random cases against the buffer,
checkpoint and buffer files, fit, the command line and shared threads, each
in a worker process with a memory cap, so that a crash counts as a crash.

    python benchmarks/hostile.py [--cases 200] [--seed 0] [--only buffer fit ...]

For every category it prints: cases tried, clean results (accepted with
finite outputs), clean errors (the library's typed errors, TypeError,
IndexError, FileNotFoundError; the CLI's one-line exit 2), tracebacks (any
other exception, or a CLI run that printed one), crashes (the worker died),
NaN leaks (finite input, non-finite output or stored state) and partial
updates (an error that left the model or buffer changed, or a loaded file
that silently differs). Exit status 1 if any of the last four is not 0.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import resource
import subprocess
import sys
import tempfile
import threading
import traceback
from collections import Counter
from pathlib import Path

import numpy as np

OUTCOMES = ("clean", "clean error", "traceback", "crash", "NaN leak", "partial update")
CATEGORIES = ("buffer", "fit", "checkpoint-bytes", "buffer-file", "cli", "threads")
MEMORY_CAP = 8 << 30


# ------------------------------------------------------------------ cases
def _value(rng: random.Random):
    return rng.choice([0.0, 1.0, -1.0, 0.5, np.nan, np.inf, -np.inf, 1e300, -1e300, 3.5e38, 1e-320, 1e6, 1e-6])


def _array(rng: random.Random, shape):
    arr = np.random.default_rng(rng.randrange(2**32)).normal(size=shape)
    for _ in range(rng.choice([0, 0, 1, 3])):
        if arr.size:
            arr.flat[rng.randrange(arr.size)] = _value(rng)
    return arr.astype(rng.choice([np.float64, np.float32, np.float16, np.int64])) if rng.random() < 0.9 else arr.tolist()


def case_buffer(rng: random.Random, work: Path) -> str:
    import grapheme_multimodal as gm

    E = 4
    buf = gm.ExperienceBuffer(rng.choice([1, 3, 8]), embed_dim=E, seed=rng.randrange(100))
    n = rng.choice([0, 1, 2, 5])
    shape = rng.choice([(n, 7, E), (n, 7, E), (n, 7, E + 1), (n, 6, E), (n,)])
    before = None
    try:
        buf.extend(_array(rng, (1, 7, E)), np.ones((1, 7), bool), np.zeros((1, E)), np.zeros((1, 7, 7)), [0.5], [1])
        before = buf.state()
        buf.extend(_array(rng, shape), rng.choice([np.ones((n, 7), bool), np.full((n, 7), 0.5), _array(rng, (n, 7))]),
                   _array(rng, (n, E)), _array(rng, (n, 7, 7)), _array(rng, (n,)),
                   rng.choice([None, list(range(n)), _array(rng, (n,))]))
    except (TypeError, IndexError, gm.GraphemeError):
        if before is not None and not _same_state(before, buf.state()):
            return "partial update"
    b = buf.batch()
    if not all(np.isfinite(getattr(b, f)).all() for f in ("embeddings", "fused", "pair_strengths", "rewards")):
        return "NaN leak"
    alpha, beta = _value(rng), _value(rng)
    try:
        s = buf.sample(rng.choice([1, 2, 5]), prioritized=rng.random() < 0.8, alpha=alpha, beta=beta, replace=True)
    except (TypeError, IndexError, gm.GraphemeError):
        return "clean error"
    return "clean" if np.isfinite(s.weights).all() and (s.weights >= 0).all() and (s.weights <= 1).all() else "NaN leak"


def _same_state(a, b) -> bool:
    return a[1] == b[1] and a[0].keys() == b[0].keys() and all(np.array_equal(a[0][k], b[0][k], equal_nan=True) for k in a[0])


def _small_model(gm):
    return gm.LearnableMultiModal(embed_dim=8, hidden_dim=8, num_heads=2, seed=0, input_dims={"visual": 5, "auditory": 3})


def _model_state(model):
    opt = model.optimizer_state()
    return ([v.tobytes() for v in model.state_dict().values()], opt["step"], opt["rng_counter"],
            [None if s is None else (s[0].tobytes(), s[1].tobytes()) for s in map(model.normalization, range(7))],
            model.epochs_trained, len(model.history))


def case_fit(rng: random.Random, work: Path) -> str:
    import grapheme_multimodal as gm

    model = _small_model(gm)
    n = rng.choice([1, 2, 8, 30])
    data = {"visual": _array(rng, (n, 5)), "auditory": _array(rng, (n, 3))}
    kwargs = {}
    for key, choices in [("epochs", [0, 1, 2, -1, 2.5]), ("batch_size", [1, 4, 64, 0]),
                         ("lr", [None, 1e-3, 1e300, -1.0, np.nan, 10.0]), ("modality_dropout", [0.0, 0.5, 1.0, np.nan]),
                         ("standardize", [True, False]), ("early_stopping", [None, 1, 0]),
                         ("objectives", [None, {"contrastive": 1.0}, {"contrastive": 1e38, "binding": 1.0}, {"nope": 1}])]:
        if rng.random() < 0.5:
            kwargs[key] = rng.choice(choices)
    if rng.random() < 0.3:
        kwargs["validation"] = {"visual": _array(rng, (4, 5)), "auditory": _array(rng, (4, 3))}
    before = _model_state(model)
    try:
        model.fit(data, progress=False, **kwargs)
    except (TypeError, gm.GraphemeError):
        return "clean error" if _model_state(model) == before else "partial update"
    ok = all(np.isfinite(v).all() for v in model.state_dict().values())
    opt = model.optimizer_state()
    ok = ok and all(np.isfinite(v).all() for v in opt["exp_avg_sq"].values())
    return "clean" if ok else "NaN leak"


def _checkpoint_bytes(work: Path) -> tuple:
    import grapheme_multimodal as gm

    path = work / "base.safetensors"
    if not path.exists():
        model = _small_model(gm)
        rng = np.random.default_rng(0)
        data = {"visual": rng.normal(size=(12, 5)), "auditory": rng.normal(size=(12, 3))}
        model.fit(data, epochs=1, progress=False)
        model.record_batch(data, rewards=0.5)
        model.save(path)
    return path.read_bytes()


def _mutate(rng: random.Random, raw: bytes) -> bytes:
    kind = rng.choice(["flip", "flip", "flip", "truncate", "header"])
    if kind == "flip":
        b = bytearray(raw)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        return bytes(b)
    if kind == "truncate":
        return raw[: rng.randrange(len(raw))]
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8 : 8 + n])
    meta = header["__metadata__"]
    key = rng.choice(sorted(meta))
    meta[key] = rng.choice(["[" * 50000 + "]" * 50000, "{}", "null", json.dumps({"embed_dim": 10**9}), "1e999", '"x"'])
    name = rng.choice([k for k in header if k != "__metadata__"])
    if rng.random() < 0.5:
        header[name]["dtype"] = rng.choice(["F16", "I32", "BOOL", "BF16", "F64"])
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return len(text).to_bytes(8, "little") + text + raw[8 + n :]


def _forge(rng: random.Random, path: Path, fmt: str, out: Path) -> None:
    """A file with valid checksums whose content was edited (what a forger,
    not a bit flip, produces): a config field, a metadata value or a tensor."""
    from grapheme_multimodal import io as gio

    tensors, meta = gio.read_tagged_safetensors(path, fmt)
    kind = rng.choice(["config", "meta", "tensor"])
    if kind == "config" and "config" in meta:
        field = rng.choice(["embed_dim", "hidden_dim", "num_heads", "buffer_size", "temperature", "learning_rate", "seed"])
        meta["config"][field] = rng.choice([0, -1, 3, 10**4, 10**9, 2**63, 1e300, "x", None])
    elif kind in ("config", "meta"):
        key = rng.choice(sorted(meta))
        meta[key] = rng.choice([None, -1, 10**12, [], {}, "x", [[[]]], {"step": 2**64}])
    else:
        name = rng.choice(sorted(tensors))
        arr = tensors[name].copy()
        if arr.size:
            values = [np.nan, np.inf, 1e38, -1, 2, 0.5] if arr.dtype.kind == "f" else [-1, 2, 2**40]
            arr.flat[rng.randrange(arr.size)] = rng.choice(values)
        tensors[name] = arr.astype(rng.choice([arr.dtype, np.float16, np.int32, np.float64, np.bool_]))
    gio.write_tagged_safetensors(out, tensors, fmt, meta)


def case_checkpoint_bytes(rng: random.Random, work: Path) -> str:
    import grapheme_multimodal as gm
    from grapheme_multimodal.checkpoint import FILE_FORMAT, checkpoint_state

    raw = _checkpoint_bytes(work)
    path = work / "mutated.safetensors"
    forged = rng.random() < 0.3
    if forged:
        _forge(rng, work / "base.safetensors", FILE_FORMAT, path)
    else:
        path.write_bytes(_mutate(rng, raw))
    try:
        model = gm.LearnableMultiModal.load(path)
    except (gm.CheckpointError, gm.TooLargeError, FileNotFoundError):
        return "clean error"
    if forged:  # a valid file with other content may load; it must hold finite numbers
        opt = model.optimizer_state()
        arrays = [*model.state_dict().values(), *opt["exp_avg"].values(), *opt["exp_avg_sq"].values()]
        return "clean" if all(np.isfinite(a).all() for a in arrays) else "NaN leak"
    original = gm.LearnableMultiModal.load(work / "base.safetensors")
    (ta, ma), (tb, mb) = checkpoint_state(model), checkpoint_state(original)
    same = ma == mb and ta.keys() == tb.keys() and all(ta[k].tobytes() == tb[k].tobytes() for k in ta)
    return "clean" if same else "partial update"


def case_buffer_file(rng: random.Random, work: Path) -> str:
    import grapheme_multimodal as gm

    path = work / "buffer.safetensors"
    if not path.exists():
        buf = gm.ExperienceBuffer(6, embed_dim=4, input_dims=(3, 1, 2, 1, 1, 1, 1), seed=1)
        for i in range(5):
            buf.extend(np.broadcast_to([np.cos(i), np.sin(i), 0.0, 0.0], (1, 7, 4)), np.ones((1, 7), bool), np.full((1, 4), i), np.zeros((1, 7, 7)), [0.1 * i], [i],
                       inputs=[np.full((1, d), i) for d in (3, 1, 2, 1, 1, 1, 1)])
        buf.save(path)
    raw = path.read_bytes()
    mutated = work / "buffer-mutated.safetensors"
    forged = rng.random() < 0.3
    if forged:
        _forge(rng, path, "grapheme-multimodal/experience-buffer/v1", mutated)
    else:
        mutated.write_bytes(_mutate(rng, raw))
    target = gm.ExperienceBuffer(3, embed_dim=4)
    before = target.state()
    try:
        target.load(mutated)
    except (gm.CheckpointError, gm.TooLargeError, FileNotFoundError):
        return "clean error" if _same_state(before, target.state()) else "partial update"
    if forged:  # a valid file with other content may load; its experiences must be valid
        b = target.batch() if len(target) else None
        ok = b is None or all(np.isfinite(getattr(b, f)).all() for f in ("embeddings", "fused", "pair_strengths", "rewards"))
        return "clean" if ok else "NaN leak"
    return "clean" if _same_state(target.state(), gm.ExperienceBuffer.from_file(path).state()) else "partial update"


def _cli_files(work: Path) -> Path:
    d = work / "cli"
    if d.exists():
        return d
    d.mkdir()
    r = np.random.default_rng(0)
    np.save(d / "a.npy", r.normal(size=(20, 5)).astype(np.float32))
    np.save(d / "b.npy", r.normal(size=(20, 3)))
    (d / "empty.npy").write_bytes(b"")
    (d / "pk.npz").write_bytes(b"PK\x03\x04" + bytes(range(200)))
    np.save(d / "complex.npy", np.ones((20, 3), complex))
    np.save(d / "rows0.npy", np.zeros((0, 3)))
    (d / "hdr.csv").write_text("a,b\n")
    (d / "latin.csv").write_bytes("a,b\n1,2\ncafé,2\n".encode("latin-1"))
    (d / "big.csv").write_text("".join("1e300,1\n" if i == 2 else "1,1\n" for i in range(20)))
    (d / "dir.npy").mkdir()
    os.mkfifo(d / "fifo.npy")
    from grapheme_multimodal.cli import main

    with contextlib.redirect_stdout(io.StringIO()):
        main(["train", "-m", f"visual={d / 'a.npy'}", "-m", f"auditory={d / 'b.npy'}", "--epochs", "1", "--embed-dim", "8",
              "--hidden-dim", "8", "--heads", "2", "-o", str(d / "m.safetensors"), "--no-progress"])
    return d


def case_cli(rng: random.Random, work: Path) -> str:
    from grapheme_multimodal.cli import main

    d = _cli_files(work)
    specs = ["a.npy", "a.npy", "b.npy", "empty.npy", "pk.npz", "complex.npy", "rows0.npy", "hdr.csv", "latin.csv",
             "big.csv", "dir.npy", "fifo.npy", "missing.npy"]
    command = rng.choice(["train", "train", "embed", "info"])
    argv = [command] + ([] if command == "train" else [str(d / rng.choice(["m.safetensors", "a.npy", "dir.npy", "fifo.npy"]))])
    if command != "info":
        for _ in range(rng.choice([1, 1, 2])):
            argv += ["-m", f"{rng.choice(['visual', 'auditory', 'smell'])}={d / rng.choice(specs)}"]
        argv += ["-o", str(work / "cli-out"), "--overwrite"]  # every case writes there: the refusal of an existing file would end them all
    if command == "train":
        argv += ["--epochs", "1", "--no-progress"]
        for _ in range(rng.choice([0, 1, 3])):
            argv += [rng.choice(["--lr", "--modality-dropout", "--validation-split", "--batch-size", "--embed-dim",
                                 "--heads", "--objectives", "--wl-dim", "--seed"]),
                     rng.choice(["0", "1", "-1", "2", "nan", "inf", "1e300", "0.5", "x", "contrastive=nan", "4"])]
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main(argv)
    except SystemExit as exc:  # argparse's usage error
        return "clean error" if exc.code == 2 else "traceback"
    lines = err.getvalue().strip().splitlines()
    if code == 2 and len(lines) == 1 and lines[0].startswith("grapheme-mm: error: "):
        return "clean error"
    if code != 0 or "Traceback" in err.getvalue():
        return "traceback"
    if command == "embed" and not np.isfinite(np.load(work / "cli-out")).all():
        return "NaN leak"
    return "clean"


def case_threads(rng: random.Random, work: Path) -> str:
    import grapheme_multimodal as gm

    scenario = rng.choice(["appends", "fit+readers", "two fits"])
    errors: list = []

    def guard(fn, *a, **k):
        try:
            fn(*a, **k)
        except Exception as exc:  # noqa: BLE001 - any error in a thread is a finding
            errors.append(exc)

    if scenario == "appends":
        buf = gm.ExperienceBuffer(2000, embed_dim=2)
        one = (np.full((1, 7, 2), 0.5 ** 0.5), np.ones((1, 7), bool), np.ones((1, 2)), np.zeros((1, 7, 7)))  # unit, as recorded

        def write(t):
            for k in range(400):
                buf.extend(*one, [0.0], [t * 400 + k])

        threads = [threading.Thread(target=guard, args=(write, t)) for t in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        lost = sorted(buf.batch().event_ids.tolist()) != list(range(1600))
        return "traceback" if errors else ("partial update" if lost else "clean")
    data = {"visual": np.random.default_rng(rng.randrange(99)).normal(size=(48, 5)),
            "auditory": np.random.default_rng(1).normal(size=(48, 3))}
    shared, reference = _small_model(gm), _small_model(gm)
    kw = dict(epochs=1, batch_size=8, progress=False)
    if scenario == "two fits":
        threads = [threading.Thread(target=guard, args=(shared.fit, data), kwargs=kw) for _ in range(2)]
        reference.fit(data, **kw)
        reference.fit(data, **kw)
    else:
        done = threading.Event()

        def read():
            while not done.is_set():
                out = shared.encode(data)
                if not np.isfinite(out).all():
                    errors.append(ValueError("non-finite read"))

        threads = [threading.Thread(target=guard, args=(read,)) for _ in range(2)]
        reference.fit(data, **kw)
    for t in threads:
        t.start()
    if scenario == "fit+readers":
        guard(shared.fit, data, **kw)
        done.set()
    for t in threads:
        t.join()
    if errors:
        return "traceback"
    return "clean" if _model_state(shared)[:5] == _model_state(reference)[:5] else "partial update"


CASES = {
    "buffer": case_buffer,
    "fit": case_fit,
    "checkpoint-bytes": case_checkpoint_bytes,
    "buffer-file": case_buffer_file,
    "cli": case_cli,
    "threads": case_threads,
}


# ----------------------------------------------------------------- workers
def worker(work: str) -> None:
    """Runs ``category seed`` lines from stdin; one JSON result per line."""
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))
    import warnings

    warnings.simplefilter("ignore")
    for line in sys.stdin:
        category, seed = line.split()
        try:
            outcome = CASES[category](random.Random(int(seed)), Path(work))
            detail = ""
        except Exception:  # noqa: BLE001 - the tally counts what escaped
            outcome, detail = "traceback", traceback.format_exc(limit=3)[-400:]
        print(json.dumps({"outcome": outcome, "detail": detail}), flush=True)


def run(categories, cases: int, seed: int) -> int:
    tally = {c: Counter() for c in categories}
    examples = {}
    with tempfile.TemporaryDirectory() as work:
        proc = None
        for category in categories:
            for i in range(cases):
                if proc is None or proc.poll() is not None:
                    proc = subprocess.Popen([sys.executable, __file__, "--worker", work], stdin=subprocess.PIPE,
                                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
                case_seed = seed * 1_000_003 + i
                proc.stdin.write(f"{category} {case_seed}\n")
                proc.stdin.flush()
                line = proc.stdout.readline()
                if not line:  # the worker died: a crash (abort, segfault, killed for memory)
                    proc.wait()
                    result = {"outcome": "crash", "detail": f"exit status {proc.returncode}"}
                    proc = None
                else:
                    result = json.loads(line)
                tally[category][result["outcome"]] += 1
                if result["outcome"] not in ("clean", "clean error"):
                    examples.setdefault((category, result["outcome"]), (case_seed, result["detail"]))
        if proc is not None:
            proc.stdin.close()
            proc.wait()
    print(f"{'category':<18}{'cases':>7}" + "".join(f"{o:>16}" for o in OUTCOMES))
    for category, counts in tally.items():
        print(f"{category:<18}{sum(counts.values()):>7}" + "".join(f"{counts[o]:>16}" for o in OUTCOMES))
    total = sum(tally.values(), Counter())
    print(f"{'all':<18}{sum(total.values()):>7}" + "".join(f"{total[o]:>16}" for o in OUTCOMES))
    for (category, outcome), (case_seed, detail) in examples.items():
        print(f"\n{category} {outcome}: case seed {case_seed}\n{detail}")
    return int(any(total[o] for o in OUTCOMES[2:]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=200, help="cases per category")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--only", nargs="+", choices=CATEGORIES, default=list(CATEGORIES))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args.worker)
        return 0
    return run(args.only, args.cases, args.seed)


if __name__ == "__main__":
    sys.exit(main())
