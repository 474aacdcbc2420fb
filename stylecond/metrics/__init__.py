"""Evaluation metrics: style classifier, FAD, KL, CLAP score, KNN style metrics, codebook usage."""
