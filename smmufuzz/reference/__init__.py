"""Reference SMMUv3 emulator: the hardware, and only the hardware (knows nothing of variants)."""
