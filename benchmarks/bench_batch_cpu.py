"""CPU time per case of each stage of the batch path, for comparing code side by side on a
shared machine (wall-clock figures there depend on the other sessions' load).

Usage::

    python benchmarks/bench_batch_cpu.py CASES.jsonl [--cases 2000] [--repeat 5]

``CASES.jsonl``: e.g. written by ``benchmarks/bench_batch.py``'s simulator
(``simulate_to_jsonl``).  Prints, per stage, the best of ``--repeat`` runs of
:func:`time.process_time` over the first ``--cases`` cases: JSON parsing; the full reader
(``read_case``, ``build_evidence``) and ``infer_batch`` (chunks of 500); the batch's reader
of plain cases (``PlainReader``, chunks of 500) and the engine on its rows
(``posterior_rows``); and a worker's whole ``process_chunk`` (chunks of 500, after a
warm-up chunk), which reads plain cases with the plain reader and the rest with the full
one.  Run it in two checkouts one after
the other, twice, and compare the best figures.
"""

from __future__ import annotations

import argparse
import time
from itertools import islice


def _best(f, repeat: int) -> float:
    best = float("inf")
    for _ in range(repeat):
        t0 = time.process_time()
        f()
        best = min(best, time.process_time() - t0)
    return best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("jsonl")
    ap.add_argument("--cases", type=int, default=2000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    from threadpoolctl import threadpool_limits

    threadpool_limits(1)
    from neb_bayes.batch.inputs import iter_items
    from neb_bayes.batch.plain import PlainReader
    from neb_bayes.batch.worker import ChunkTask, process_chunk
    from neb_bayes.case.loader import load_text
    from neb_bayes.case.read import read_case
    from neb_bayes.evidence import build_evidence
    from neb_bayes.inference.batch_exact import infer_batch
    from neb_bayes.inference.vectorised import posterior_rows
    from neb_bayes.model.compiled import load_model

    model = load_model()
    with open(args.jsonl, encoding="utf-8") as fh:
        lines = list(islice(fh, args.cases))
    n = len(lines)
    chunk = 500
    datas = [load_text(x, "json") for x in lines]
    cases = [read_case(d) for d in datas]
    evs = [build_evidence(model, c) for c in cases]
    infer_batch(model, evs[:chunk])

    def plain_read() -> list:
        out = []
        for i in range(0, n, chunk):
            reader = PlainReader(model)
            for d in datas[i:i + chunk]:
                reader.add(d)
            out.append((reader.evidences, reader.flat()))
        return out

    plain = plain_read()
    stages = {
        "JSON parsing": lambda: [load_text(x, "json") for x in lines],
        "read_case": lambda: [read_case(d) for d in datas],
        "build_evidence": lambda: [build_evidence(model, c) for c in cases],
        "infer_batch": lambda: [infer_batch(model, evs[i:i + chunk]) for i in range(0, n, chunk)],
        "plain reader": plain_read,
        "posterior_rows": lambda: [posterior_rows(model, e, f) for e, f in plain],
    }
    for name, f in stages.items():
        t = _best(f, args.repeat)
        print(f"{name:16s} {t / n * 1e6:8.1f} us/case CPU  {n / t:9,.0f} cases/s")
    items = list(islice(iter_items([args.jsonl]), n))
    tasks = [ChunkTask(index=k, first_item=k * chunk, items=items[k * chunk:(k + 1) * chunk])
             for k in range(-(-n // chunk))]
    process_chunk(tasks[0])
    t = _best(lambda: [process_chunk(task) for task in tasks], max(1, args.repeat // 2))
    print(f"{'process_chunk':16s} {t / n * 1e6:8.1f} us/case CPU  {n / t:9,.0f} cases/s "
          "(a worker's whole chunk: parse, read, evidence, infer, table)")


if __name__ == "__main__":
    main()
