"""smmufuzz: coverage-guided differential fuzzing of IOMMU invalidation logic (Arm SMMUv3 first)."""
__version__ = "0.1.0"
