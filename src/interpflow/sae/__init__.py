"""Sparse autoencoders: our tensor format (format.py), loading pretrained ones through sae_lens
(pretrained.py), training a TopK SAE on cached activations (topk.py), and the `sae` stage."""
