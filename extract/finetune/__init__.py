"""``train-backbone``: fine-tune the two ResNet101 streams on trimmed clips, the paper's feature recipe.

TSRNet extracts its features with two ResNet101s "pretrained on the ImageNet, and fine-tuned
afterwards", trained separately with identical settings. The training is TSN's (Wang et al. 2016,
as UntrimmedNet uses it): each clip is split into K segments, one snippet (an RGB frame, or a stack
of 5 TV-L1 fields) is drawn from each, and the class scores of the K snippets are averaged
(segmental consensus) before the cross-entropy.

One job per module: :mod:`.clips` finds the clips and their labels, :mod:`.cache` decodes them and
computes their flow once, :mod:`.augment` turns a cached snippet into a training input,
:mod:`.model` is the network with its consensus, :mod:`.config` holds the settings with their
defaults and why, :mod:`.loop` trains one stream resumably and writes its checkpoint.
"""
