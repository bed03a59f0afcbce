"""Turn a pytest-benchmark JSON file into a side-by-side ratio table.

    pytest bench/ --benchmark-only --benchmark-json=out.json
    python bench/report.py out.json [--combine]

One row per (op, shape, dtype, direction): the median time of each member and Numba's speed-up
over NumPy and over PyTorch (> 1 means Numba is faster). ``--combine`` adds forward+backward
rows (sum of the two medians), which is what the issue targets quote.
"""
import json
import sys
from collections import defaultdict


def medians(path):
    """{(op, shape, dtype, direction): {member: median seconds}}."""
    data = json.load(open(path))
    table = defaultdict(dict)
    for b in data["benchmarks"]:
        info = b["extra_info"]
        key = (info["op"], info["shape"], info["dtype"], info["direction"])
        table[key][info["member"]] = b["stats"]["median"]
    return table, data.get("machine_info", {})


def combine(table):
    """Add ``forward+backward`` rows where both directions were measured."""
    out = dict(table)
    for (op, shape, dtype, direction), row in table.items():
        if direction != "forward":
            continue
        back = table.get((op, shape, dtype, "backward"))
        if back:
            out[(op, shape, dtype, "forward+backward")] = {
                m: row[m] + back[m] for m in row if m in back}
    return out


def ratio(a, b):
    return f"{a / b:.2f}x" if a and b else "-"


def markdown(table):
    lines = ["| op | shape | dtype | direction | NumPy ms | Numba ms | PyTorch ms | Numba vs NumPy "
             "| Numba vs PyTorch |", "|" + "---|" * 9]
    for key in sorted(table):
        row = table[key]
        np_, nb, th = row.get("numpy"), row.get("numba"), row.get("torch")
        ms = lambda v: f"{v * 1e3:.3f}" if v else "-"
        lines.append(f"| {' | '.join(key)} | {ms(np_)} | {ms(nb)} | {ms(th)} | "
                     f"{ratio(np_, nb)} | {ratio(th, nb)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    table, _ = medians(sys.argv[1])
    if "--combine" in sys.argv:
        table = combine(table)
    print(markdown(table))
