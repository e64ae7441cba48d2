"""Codecs between answers' text and geometry: location tokens (loc.py), the mask tokenizer (seg.py, seg_vqvae.py,
paligemma_vae.py) and the mask refiner that ends a mask's decoding (seg_refine.py), COCO RLE (rle.py) and answer
shapes (shape.py). Their trainers live in train/, their benchmark in bench/."""
