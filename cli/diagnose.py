"""``rnnedge diagnose``: diagnostics of trained models (needs torch)."""

from pathlib import Path
from typing import List, Optional

import typer

from .app import DATA_DIR, HELP, app

diagnose_app = typer.Typer(**HELP, help="Diagnostics of trained models (needs torch).")
app.add_typer(diagnose_app, name="diagnose")


@diagnose_app.command("gradients",
    epilog='Example: rnnedge diagnose gradients --checkpoint runs/charlm/best.pt --out runs/diagnose')
def diagnose_gradients(checkpoint: Optional[List[Path]] = typer.Option(None, help="trained char "
                                                                       "models to add (repeatable)"),
                       out: Path = typer.Option(Path("runs/diagnose"), help="folder for the PNG and JSON"),
                       steps: int = 200, windows: int = 8, hidden_size: int = 256,
                       num_layers: int = 2, data_dir: Optional[Path] = DATA_DIR, seed: int = 0):
    """||dL/dh(k)|| against the distance t-k for RNN, LSTM and GRU on real Hamlet windows."""
    from rnnedge.train.diagnose import charlm_curves, check_out_dir, report

    check_out_dir(out)
    curves = charlm_curves(checkpoint or (), steps=steps, windows=windows, data_dir=data_dir,
                           hidden_size=hidden_size, num_layers=num_layers, seed=seed)
    for row in report(curves, out):
        at = row["vanishes_at"]
        typer.echo(f"{row['curve']}: below 1e-3 of its value at k = t "
                   f"{f'from distance {at}' if at is not None else f'nowhere within {steps} steps'}; "
                   f"ratio at 50 steps {row['ratio_at_50']:.2e}")
    typer.echo(f"wrote {out / 'gradients.png'} and {out / 'gradients.json'}")
