"""AnyI2V settings for the toy model, where its 64 px canvas differs from SD1.5's 512 px.

The toy UNet's finest level is 16 x 16 (SD1.5's paper layers sit at 16 x 16 and 32 x 32), so the
trajectory alignment runs on its decoder's two 16 x 16 self-attentions; and with injection into the
conditional CFG branch alone, CFG 8 turns the toy model's frame 0 into speckle, so both branches get
the features. Chosen among twelve candidates on development scenes by a rule fixed before the run; on
the held-out benchmark scenes ObjMC 15.93 px against 19.11 px for the paper's settings
(``benchmarks/README.md``, "Settings for the toy model"). Everything else stays the paper's.

They suit the benchmark's condition modalities (edges, depth, sketch, segmentation). With the scene's
own RGB frame as the condition the paper's settings do better (ObjMC 4.05 against 6.40 px:
"The modality gap").
"""

TOY_METHOD_SETTINGS = dict(
    inject_uncond=True,
    opt_layers=("up_blocks.2.attentions.0.transformer_blocks.0.attn1",
                "up_blocks.2.attentions.1.transformer_blocks.0.attn1"),
)
