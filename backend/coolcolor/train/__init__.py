"""Training (paper §3.3, §4.1): progressive equivariant training of CoolColor, its data pipeline, the
evaluation on held-out world clips, and the recipe of the embedded default model ``coolcolor-tiny``.

    coolcolor train --config backend/coolcolor/train/configs/coolcolor-tiny-vae.json --output runs/vae
    coolcolor train --config backend/coolcolor/train/configs/coolcolor-tiny.json --output runs/tiny \\
        --set vae_from=runs/vae
"""
