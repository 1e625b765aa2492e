"""bertlab: fine-tune BERT-family encoders on biomedical text with NeMo and Hydra.

Importing this package is cheap: NeMo, torch and Lightning are imported lazily
inside the functions that need them, so ``--help`` and ``--cfg job`` stay fast.
"""

__version__ = "0.1.0"
