"""Networks: the residual 3D UNet and its per-sample output head."""
