"""Training on cached features: TSRNet and the methods it is compared with."""
