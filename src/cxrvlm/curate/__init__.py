"""Curation: source records -> task examples in patient-level train/val/test splits, checked and documented.

    from cxrvlm.curate import CurateConfig, curate, write_dataset, write_card
    result = curate(CurateConfig(sources=[("tb", "data/tb")], out="runs/curated"))
    write_card(result, write_dataset(result))

The command line is `cxrvlm curate` (`cxrvlm.curate.command`).
"""
from cxrvlm.curate.card import write_card
from cxrvlm.curate.checks import DuplicateImageError, LeakageError
from cxrvlm.curate.pipeline import CurateConfig, Curated, curate
from cxrvlm.curate.write import write_dataset

__all__ = ["CurateConfig", "Curated", "DuplicateImageError", "LeakageError", "curate", "write_card", "write_dataset"]
