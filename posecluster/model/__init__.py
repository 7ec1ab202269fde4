"""The part detector, split as DeepLabCut 3 does: backbone, heads, target generator, loss, decoder."""
