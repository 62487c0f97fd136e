"""SkySense model: factorized multi-modal encoder, geo-context prototypes, presets."""
