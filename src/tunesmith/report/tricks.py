"""Which catalog trick (shared/catalog.md) each recipe field implements: the report's recipe table.

One table, `RECIPE_TRICKS`, keyed by dotted recipe path; a section key (`data.augment`) covers every
field under it. `trick_for` walks from the field up to its sections and returns the first match.
"""

from __future__ import annotations

__all__ = ["RECIPE_TRICKS", "TRICK_NAMES", "trick_for"]

TRICK_NAMES = {
    "T01": "missing values",
    "T02": "categorical data",
    "T03": "outliers, duplicates",
    "T04": "standardize inputs",
    "T05": "standardize regression targets",
    "T06": "data augmentation",
    "T07": "mini-batch with shuffling",
    "T08": "input sizes powers of two",
    "T10": "family chosen by data",
    "T11": "activation choice",
    "T12": "output activation + loss by task",
    "T13": "weight initialization",
    "T14": "normalization layers",
    "T15": "dropout",
    "T16": "CNN design rules",
    "T17": "global average pooling head",
    "T18": "skip and dense connections",
    "T19": "RNN design rules",
    "T20": "autoencoder rules",
    "T21": "hierarchical neck",
    "T22": "width/depth choice",
    "T30": "optimizer choice",
    "T31": "learning-rate starting point",
    "T32": "learning-rate schedules",
    "T33": "batch size",
    "T34": "gradient clipping",
    "T41": "L1 / L2",
    "T42": "max-norm constraint",
    "T43": "early stopping",
    "T40": "overfit first, then trade off",
    "T44": "smaller model as regularizer",
    "T50": "strict seeds",
    "T51": "cross-validation designed for the data",
    "T52": "hyperparameter search",
    "T53": "tune in stages",
    "T54": "frameworks and hardware",
    "T65": "vanishing / exploding gradients",
    "T66": "dead neurons",
}

RECIPE_TRICKS = {
    "data.time": "T51",
    "data.group": "T51",
    "data.cv": "T51",
    "data.ensemble": "T53",  # the final model of a tune: its refit members averaged
    "data.split": "T51",
    "data.gap": "T51",
    "data.season": "T51",  # the time column's phase: what a time-aware design reads of it, training rows only
    "data.task": "T12",
    "data.kind": "T10",
    "data.impute": "T01",
    "data.scale": "T04",
    "data.scale_target": "T05",
    "data.outliers": "T03",
    "data.clip_quantile": "T03",
    "data.drop_duplicates": "T03",
    "data.numbers": "T01",  # stray text in a numeric column: missing, imputed
    "data.dates": "T02",  # dates as numbers, never one-hot categories
    "data.max_categories": "T02",
    "data.categorical": "T02",
    "data.pad_pow2": "T08",
    "data.vocab_size": "T02",  # text: the tokenizer's vocabulary, fitted on the training rows like any encoding
    "data.min_count": "T02",
    "data.max_length": "T08",  # text: the fixed length token ids are padded (or cut) to
    "data.augment": "T06",
    "model.family": "T10",
    "model.width": "T22",
    "model.depth": "T22",
    "model.activation": "T11",
    "model.norm": "T14",
    "model.init": "T13",
    "model.dropout": "T15",
    "model.kernel_size": "T16",
    "model.bottleneck": "T16",
    "model.multi_kernel": "T16",
    "model.residual": "T18",
    "model.dense": "T18",
    "model.head": "T17",
    "model.neck": "T21",
    "model.cell": "T19",
    "model.bidirectional": "T19",
    "model.embed_dim": "T13",  # text: the embedding, truncated-normal initialized
    "model.bigrams": "T10",  # text: fastText's word pairs in the bag
    "model.code_size": "T20",
    "model.sparsity": "T20",
    "model.denoise": "T20",
    "model.pretrained": "T31",
    "train.solver": "T44",
    "model.backbone": "T31",  # a pretrained encoder: the fine-tuning defaults
    "model.backbone_dropout": "T15",
    "model.pooling": "T21",  # what the head reads of the backbone's layers
    "model.step_order": "T19",  # a recurrent model reads a lag series oldest first
    "model.step_columns": "T19",  # which columns a sequence reading takes as steps (the season's phase aside)
    "train.batch_size": "T07",
    "train.effective_batch_size": "T33",
    "train.lr": "T31",
    "train.head_lr_mult": "T31",
    "train.layer_decay": "T31",  # discriminative LRs per layer
    "train.freeze_epochs": "T31",  # the head first, then the whole backbone
    "train.optimizer": "T30",
    "train.momentum": "T30",
    "train.nesterov": "T30",
    "train.weight_decay": "T41",
    "train.l1": "T41",
    "train.l2": "T41",
    "train.max_norm": "T42",
    "train.clip_norm": "T34",
    "train.clip_value": "T34",
    "train.schedule": "T32",
    "train.warmup_epochs": "T32",
    "train.step_every": "T32",
    "train.gamma": "T32",
    "train.early_stopping": "T43",
    "train.seed": "T50",
    "train.deterministic": "T50",
    "train.device": "T54",
    "train.threads": "T54",
    "train.monitor": "T65",
    "train.dynamic_padding": "T07",  # text: each batch cut to its longest row
    "train.group_by_length": "T07",  # text: batches of rows of similar length
    "train.probe_init": "T62",  # a backbone's head starts from its linear probe (LP-FT)
    "tune": "T52",
    "tune.strategy": "T53",
    "tune.shares": "T53",
    "tune.fit_loss": "T40",
    "tune.refit_folds": "T51",
    "tune.folds": "T51",
    "tune.final": "T44",
}


def trick_for(key: str) -> str | None:
    """The T-id of a dotted recipe field ("train.early_stopping.patience" -> "T43"), or None."""
    parts = key.split(".")
    for end in range(len(parts), 0, -1):
        found = RECIPE_TRICKS.get(".".join(parts[:end]))
        if found:
            return found
    return None
