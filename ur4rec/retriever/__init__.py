"""The UR4Rec user preference retriever (paper §3.2–3.4), its pre-training and the augmenters.

Modules: `config` (typed params), `attention_masks` (Figure 3), `bert_init` (self-attention/FFN weights from a
BERT checkpoint), `model` (`Retriever`), `losses` (InfoNCE with max-over-proxies, PIM BCE), `variants`
(variant and ablation specs), `augment` (+BERT, +LLM, KAR, UR4Rec augmenters), `pretrain` (Algorithm 1
lines 9–18), `joint` (the augmented training run, Algorithm 1 lines 19–23).
"""
