"""Writes demo.ipynb: a small pipeline whose slow steps show what a replay saves."""

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

CELLS = [
    new_markdown_cell(
        "# kitteh_magic demo\n\n"
        "Each `%%durable` cell is a step. Run the notebook, restart the kernel and run it again:\n"
        "every step is restored from `.kitteh/` in milliseconds instead of running again."),
    new_code_cell("%load_ext kitteh_magic"),
    new_code_cell(
        "%%durable load\n"
        "import time\n"
        "import numpy as np\n"
        "import pandas as pd\n"
        "time.sleep(2)  # stands in for a slow download\n"
        "rng = np.random.default_rng(7)\n"
        "sales = pd.DataFrame({'store': rng.integers(0, 50, 1_000_000),\n"
        "                      'price': rng.gamma(2.0, 10.0, 1_000_000),\n"
        "                      'units': rng.poisson(3, 1_000_000)})\n"
        "print(f'loaded {len(sales):,} rows')"),
    new_code_cell(
        "%%durable features\n"
        "sales['revenue'] = sales['price'] * sales['units']\n"
        "by_store = sales.groupby('store')['revenue'].sum().sort_values(ascending=False)\n"
        "by_store.head()"),
    new_code_cell(
        "%%durable model\n"
        "time.sleep(2)  # stands in for an expensive fit\n"
        "X = np.column_stack([sales['price'], np.ones(len(sales))])\n"
        "coef, *_ = np.linalg.lstsq(X, sales['revenue'].to_numpy(), rcond=None)\n"
        "print(f'revenue ~ {coef[0]:.2f} * price + {coef[1]:.2f}')"),
    new_code_cell(
        "%%durable plot\n"
        "import matplotlib.pyplot as plt\n"
        "by_store.head(10).plot.bar(title='top stores by revenue')\n"
        "plt.show()"),
    new_code_cell("%durable status"),
]


RESUME_CELLS = [
    new_markdown_cell(
        "# Resume after a crash\n\n"
        "`ask_model` is an activity: each answer is journaled as it arrives. The kernel dies after "
        "the third of five slow, paid calls. Run the cell again (or let `kitteh-magic run "
        "--max-restarts 1` do it): the first three answers come back from the journal at once, "
        "with the times they were first received, and only the last two are asked again."),
    new_code_cell("%load_ext kitteh_magic"),
    new_code_cell(
        "%%durable ask\n"
        "import os, signal, time\n"
        "import kitteh_magic as km\n"
        "\n"
        "@km.activity\n"
        "def ask_model(question):\n"
        "    time.sleep(1)  # stands in for a slow, paid API call\n"
        "    return f'answer to {question!r}'\n"
        "\n"
        "answers = []\n"
        "for i, question in enumerate(['revenue?', 'churn?', 'forecast?', 'risks?', 'plan?']):\n"
        "    answers.append(ask_model(question))\n"
        "    print(time.strftime('%H:%M:%S'), 'answer', i + 1)\n"
        "    if i == 2 and not os.path.exists('.kitteh/crashed-once'):\n"
        "        open('.kitteh/crashed-once', 'w').close()\n"
        "        os.kill(os.getpid(), signal.SIGKILL)  # the kernel dies here, once\n"
        "answers"),
    new_code_cell("%durable log ask"),
]


def write(path: Path, cells: list[nbformat.NotebookNode]) -> None:
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nbformat.write(nb, path)


def main() -> None:
    here = Path(__file__).parent
    write(here / "demo.ipynb", CELLS)
    write(here / "resume_demo.ipynb", RESUME_CELLS)


if __name__ == "__main__":
    main()
