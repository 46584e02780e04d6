"""Ready-made models in Python: `banking` (the doge-datagen README's model)."""
