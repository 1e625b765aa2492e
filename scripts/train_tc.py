"""Fine-tune a BERT encoder to classify PubMed abstracts (NeMo TextClassificationModel).

  python scripts/train_tc.py model.dataset.num_classes=3 [trainer=gpu] [experiment=course_run2]
"""

from pathlib import Path

import hydra
from omegaconf import DictConfig

from bertlab.cli import check_overrides, exit_on_user_error
from bertlab.config import register_resolvers

register_resolvers()


@hydra.main(version_base="1.3", config_path="../conf", config_name="train_tc")
@exit_on_user_error
def main(cfg: DictConfig) -> float | None:
    """Returns the best dev score of the monitored metric: what Hydra sweepers optimise."""
    from bertlab.train import train

    return train(cfg).best_val


if __name__ == "__main__":
    check_overrides(Path(__file__).parent.parent / "conf", "train_tc")
    main()
