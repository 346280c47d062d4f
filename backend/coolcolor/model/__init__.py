"""The CoolColor model: UNet with F_in, keyframe attention processors, checkpoint folders, presets."""
