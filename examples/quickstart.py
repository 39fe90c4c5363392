"""A first run: build events from text graphs and feature vectors, fuse
them, score cross-modal bindings and attend over modalities — per event and
batched. Run: python examples/quickstart.py"""

import numpy as np

import grapheme_multimodal as gm

model = gm.LearnableMultiModal(seed=0, input_dims={"visual": 32})
print(model)

rng = np.random.default_rng(0)
event = gm.MultiModalEvent(1)
event.add_component(gm.ModalGraph(gm.Graph.from_text("a red ball"), gm.Modality.LINGUISTIC))
event.add_component(gm.ModalGraph(gm.Graph.from_text("bounce bounce"), gm.Modality.AUDITORY))
event.add_component(gm.ModalFeatures(rng.normal(size=32), gm.Modality.VISUAL))

fused = model.fuse_event(event)
print("fused embedding:", fused.shape, "norm", round(float(np.linalg.norm(fused)), 4))
for b in model.compute_bindings(event):
    print(f"binding {b.source[0]} -> {b.target[0]}: {b.strength:.3f}")
for modality, weight in model.get_modality_attention(fused, event):
    print(f"attention {modality}: {weight:.3f}")

# The same model on a batch of 4096 events, numpy in and out.
batch = 4096
inputs = {"visual": rng.normal(size=(batch, 32)), "linguistic": rng.random((batch, 18))}
mask = np.ones((batch, 7), bool)
mask[:, [1, 3, 4, 5, 6]] = False
mask[::2, 2] = False  # every other event lacks its text
embeddings, fused_batch = model.encode_and_fuse(inputs, mask)
weights = model.attention_weights(fused_batch, embeddings, mask)
print("batched:", embeddings.shape, fused_batch.shape, "attention rows sum to", weights.sum(1)[:3])
