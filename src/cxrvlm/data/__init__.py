"""The data a curated split is read with, one definition for train/, eval/ and the trainers: the examples
(split.py) and their images and augmentations (images.py). Above io/, tokens/ and examples.py; below train/ and
eval/."""
