"""Implementations under test: Python models of the Linux IOMMU code (know nothing of the harness)."""
