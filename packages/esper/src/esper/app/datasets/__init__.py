"""Datasets the task presets load: scikit-learn's bundled digits, and CIFAR-10 from a local directory."""
